"""
C{msnp-admin}: manage accounts in the server's database (SQLite, or
PostgreSQL with --postgres), and move an SQLite installation's accounts to
PostgreSQL (C{migrate}).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from msnp.msn import wire
from msnp.store.sqlite import Database
from msnp.store.records import AccountExists, NoSuchAccount, canonical_handle
from msnp.tap import DEFAULT_DB


def _check_handle(handle: str) -> str:
    if not wire.is_valid_handle(handle) or not wire.handle_has_domain(handle):
        raise ValueError(f"not a valid account name (user@domain, at most {wire.MAX_HANDLE_BYTES} bytes): {handle}")
    return canonical_handle(handle)


def _check_name(name: str) -> str:
    if len(wire.url_encode(name).encode("utf-8")) > wire.MAX_NAME_BYTES:
        raise ValueError(f"friendly name longer than {wire.MAX_NAME_BYTES} bytes once encoded")
    return name


NO_MD5_HELP = (
    "store only the slow salted hash, not the MD5 password-equivalent: the account can log in "
    "through Passport (MSNP8+) but not with MD5 (MSNP2-MSNP7)"
)


PASSWORD_HELP = "the password (asked for when left out, so that it stays out of the shell history and process list)"
EMAIL_HELP = "account name, user@domain"


POSTGRES_HELP = "libpq connection string of the PostgreSQL database, the server's --postgres (instead of --db)"


def build_parser() -> argparse.ArgumentParser:
    db_help = f"SQLite database file, the server's --db (default {DEFAULT_DB})"
    parser = argparse.ArgumentParser(prog="msnp-admin", description="Manage msnp accounts.")
    parser.add_argument("--db", help=db_help)
    parser.add_argument("--postgres", metavar="CONNINFO", help=POSTGRES_HELP)
    # --db and --postgres are also accepted after the action, where it is
    # easy to put them.
    db_after = argparse.ArgumentParser(add_help=False)
    db_after.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    db_after.add_argument("--postgres", metavar="CONNINFO", default=argparse.SUPPRESS, help=POSTGRES_HELP)
    sections = parser.add_subparsers(dest="section", required=True)
    user = sections.add_parser("user", help="accounts")
    actions = user.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create an account", parents=[db_after])
    add.add_argument("email", help=EMAIL_HELP)
    add.add_argument("--password", help=PASSWORD_HELP)
    add.add_argument("--name", help="friendly name (default: the account name)")
    add.add_argument("--no-md5", action="store_true", help=NO_MD5_HELP)
    passwd = actions.add_parser("passwd", help="change a password", parents=[db_after])
    passwd.add_argument("email", help=EMAIL_HELP)
    passwd.add_argument("--password", help=PASSWORD_HELP)
    passwd.add_argument("--no-md5", action="store_true", help=NO_MD5_HELP)
    delete = actions.add_parser("del", help="delete an account", parents=[db_after])
    delete.add_argument("email", help=EMAIL_HELP)
    actions.add_parser("list", help="list accounts (name and friendly name)", parents=[db_after])
    md5 = sections.add_parser("md5", help="the MD5 password-equivalents MSNP2-MSNP7 logins need")
    md5_actions = md5.add_subparsers(dest="action", required=True)
    md5_actions.add_parser("list", help="list the accounts that still keep one", parents=[db_after])
    md5_actions.add_parser(
        "purge",
        help="drop every stored one: afterwards no account can log in with MD5 until its password is set again",
        parents=[db_after],
    )
    migrate = sections.add_parser(
        "migrate",
        help="copy every account of an SQLite database, with its lists, groups, settings and list versions, "
        "into a PostgreSQL database (all or nothing)",
    )
    migrate.add_argument("--from", dest="source", metavar="PATH", required=True, help="the SQLite database file")
    migrate.add_argument("--postgres", metavar="CONNINFO", default=argparse.SUPPRESS, help=POSTGRES_HELP)
    return parser


def _read_password(given, stdin) -> str:
    if given is not None:
        return given
    if stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ValueError("the passwords differ")
        return password
    return stdin.readline().rstrip("\r\n")


def _open(args):
    """
    The database the arguments name (both kinds have the same methods).
    """
    if args.postgres:
        from msnp.store.postgres import PostgresDatabase

        return PostgresDatabase.open(args.postgres)
    return Database(args.db)


def migrate(args, out, err) -> int:
    """
    Copy every account of the SQLite database C{args.source} into the
    PostgreSQL database, in one transaction.
    """
    from msnp.store.postgres import PostgresDatabase

    if not args.postgres:
        print("msnp-admin: migrate needs --postgres CONNINFO, the database to move to", file=err)
        return 2
    if not os.path.isfile(args.source):
        print(f"msnp-admin: no such file: {args.source}", file=err)
        return 1
    try:
        source = Database(args.source)
    except Exception as error:
        print(f"msnp-admin: cannot open {args.source}: {error}", file=err)
        return 1
    try:
        target = PostgresDatabase.open(args.postgres)
    except Exception as error:
        source.close()
        print(f"msnp-admin: cannot open the PostgreSQL database: {error}", file=err)
        return 1
    try:
        accounts = ((account, source.load_user(account.handle)) for account in source.list_accounts())
        count = target.import_accounts(accounts)
    except AccountExists as error:
        print(f"msnp-admin: {error} already has an account in the PostgreSQL database: nothing was migrated", file=err)
        return 1
    finally:
        target.close()
        source.close()
    print(f"migrated {count} account{'' if count == 1 else 's'} from {args.source}", file=out)
    return 0


def main(argv=None, out=sys.stdout, err=sys.stderr, stdin=None) -> int:
    args = build_parser().parse_args(argv)
    if args.db and args.postgres:
        print("msnp-admin: --db and --postgres name two databases: give one", file=err)
        return 2
    if args.section == "migrate":
        return migrate(args, out, err)
    args.db = args.db or DEFAULT_DB
    where = "the PostgreSQL database" if args.postgres else args.db
    try:
        database = _open(args)
    except Exception as error:
        print(f"msnp-admin: cannot open {where}: {error}", file=err)
        return 1
    try:
        if (args.section, args.action) == ("user", "add"):
            handle = _check_handle(args.email)
            name = _check_name(args.name) if args.name is not None else None
            password = _read_password(args.password, stdin or sys.stdin)
            if not password:
                raise ValueError("the password must not be empty")
            database.create_account(handle, password, name, keep_md5=not args.no_md5)
            print(f"added {handle}" + (" (no MD5 login)" if args.no_md5 else ""), file=out)
        elif (args.section, args.action) == ("user", "passwd"):
            password = _read_password(args.password, stdin or sys.stdin)
            if not password:
                raise ValueError("the password must not be empty")
            database.set_password(args.email, password, keep_md5=not args.no_md5)
            print(f"password changed for {canonical_handle(args.email)}" + (" (no MD5 login)" if args.no_md5 else ""), file=out)
        elif (args.section, args.action) == ("user", "del"):
            database.delete_account(args.email)
            print(f"deleted {canonical_handle(args.email)}", file=out)
        elif (args.section, args.action) == ("user", "list"):
            accounts = database.list_accounts()
            for account in accounts:
                print(f"{account.handle}\t{account.friendly_name}", file=out)
            if not accounts:
                # Said on stderr so that the listing stays empty for scripts.
                print(f"msnp-admin: no accounts in {where}", file=err)
        elif (args.section, args.action) == ("md5", "list"):
            for account in database.list_accounts():
                if account.md5_password:
                    print(account.handle, file=out)
        elif (args.section, args.action) == ("md5", "purge"):
            purged = database.purge_md5_passwords()
            print(f"dropped the MD5 password-equivalent of {purged} account{'' if purged == 1 else 's'}", file=out)
        return 0
    except ValueError as error:
        print(f"msnp-admin: {error}", file=err)
        return 2
    except AccountExists as error:
        print(f"msnp-admin: account already exists: {error}", file=err)
        return 1
    except NoSuchAccount as error:
        print(f"msnp-admin: no such account: {error}", file=err)
        return 1
    finally:
        database.close()


if __name__ == "__main__":
    sys.exit(main())
