"""
C{msnp-admin}: manage accounts in the server's database.
"""

from __future__ import annotations

import argparse
import sys

from msnp import wire
from msnp.store import AccountExists, Database, NoSuchAccount, canonical_handle
from msnp.tap import DEFAULT_DB


def _check_handle(handle: str) -> str:
    if not wire.is_valid_handle(handle) or not wire.handle_has_domain(handle):
        raise ValueError(f"not a valid account name (user@domain, at most {wire.MAX_HANDLE_BYTES} bytes): {handle}")
    return canonical_handle(handle)


def _check_name(name: str) -> str:
    if len(wire.url_encode(name).encode("utf-8")) > wire.MAX_NAME_BYTES:
        raise ValueError(f"friendly name longer than {wire.MAX_NAME_BYTES} bytes once encoded")
    return name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msnp-admin", description="Manage msnp accounts.")
    parser.add_argument("--db", default=DEFAULT_DB, help=f"SQLite database file (default {DEFAULT_DB})")
    sections = parser.add_subparsers(dest="section", required=True)
    user = sections.add_parser("user", help="accounts")
    actions = user.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create an account")
    add.add_argument("email")
    add.add_argument("--password", required=True)
    add.add_argument("--name", help="friendly name (default: the account name)")
    passwd = actions.add_parser("passwd", help="change a password")
    passwd.add_argument("email")
    passwd.add_argument("--password", required=True)
    delete = actions.add_parser("del", help="delete an account")
    delete.add_argument("email")
    actions.add_parser("list", help="list accounts")
    return parser


def main(argv=None, out=sys.stdout, err=sys.stderr) -> int:
    args = build_parser().parse_args(argv)
    try:
        database = Database(args.db)
    except Exception as error:
        print(f"msnp-admin: cannot open {args.db}: {error}", file=err)
        return 1
    try:
        if args.action == "add":
            handle = _check_handle(args.email)
            name = _check_name(args.name) if args.name is not None else None
            if not args.password:
                raise ValueError("the password must not be empty")
            database.create_account(handle, args.password, name)
            print(f"added {handle}", file=out)
        elif args.action == "passwd":
            if not args.password:
                raise ValueError("the password must not be empty")
            database.set_password(args.email, args.password)
            print(f"password changed for {canonical_handle(args.email)}", file=out)
        elif args.action == "del":
            database.delete_account(args.email)
            print(f"deleted {canonical_handle(args.email)}", file=out)
        elif args.action == "list":
            for account in database.list_accounts():
                print(f"{account.handle}\t{account.friendly_name}", file=out)
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
