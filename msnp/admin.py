"""
C{msnp-admin}: manage accounts in the server's database (SQLite, or
PostgreSQL with --postgres), move an SQLite installation's accounts to
PostgreSQL (C{migrate}), and steer a running server through its admin API
(who is online, kick, lock).

Account changes are written to the database directly, so they work
whether or not the server runs; when a server serving that same database
answers at C{--server}, deleting an account goes through it and a changed
password ends the account's sessions there, so both take effect at once.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Optional

import msnp
from msnp.control.api import database_identity
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


DEFAULT_SERVER = "http://127.0.0.1:8081"
# Seconds to wait for the admin API.
API_TIMEOUT = 10.0


def build_parser() -> argparse.ArgumentParser:
    db_help = f"SQLite database file, the server's --db (default {DEFAULT_DB})"
    create_help = "make the SQLite database file if it does not exist (otherwise a missing file is an error)"
    server_help = f"the running server's admin endpoint (default {DEFAULT_SERVER})"
    token_help = "file holding the admin bearer token (the server's --admin-token-file)"
    parser = argparse.ArgumentParser(prog="msnp-admin", description="Manage msnp accounts and steer a running server.")
    parser.add_argument("--version", action="version", version=f"msnp {msnp.__version__}")
    parser.add_argument("--db", help=db_help)
    parser.add_argument("--postgres", metavar="CONNINFO", help=POSTGRES_HELP)
    parser.add_argument("--create", action="store_true", help=create_help)
    parser.add_argument("--server", default=DEFAULT_SERVER, help=server_help)
    parser.add_argument("--token-file", default=None, help=token_help)
    # The global options are also accepted after the action, where it is
    # easy to put them.
    db_after = argparse.ArgumentParser(add_help=False)
    db_after.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    db_after.add_argument("--postgres", metavar="CONNINFO", default=argparse.SUPPRESS, help=POSTGRES_HELP)
    db_after.add_argument("--create", action="store_true", default=argparse.SUPPRESS, help=create_help)
    db_after.add_argument("--server", default=argparse.SUPPRESS, help=server_help)
    db_after.add_argument("--token-file", default=argparse.SUPPRESS, help=token_help)
    server_after = argparse.ArgumentParser(add_help=False)
    server_after.add_argument("--server", default=argparse.SUPPRESS, help=server_help)
    server_after.add_argument("--token-file", default=argparse.SUPPRESS, help=token_help)
    sections = parser.add_subparsers(dest="section", required=True)
    sections.add_parser("who", help="who is signed in to the running server", parents=[server_after])
    for action, text in (
        ("kick", "end an account's sessions on the running server"),
        ("lock", "lock an account (its logins are refused) and end its sessions"),
        ("unlock", "let a locked account log in again"),
    ):
        remote = sections.add_parser(action, help=text, parents=[server_after])
        remote.add_argument("email", help=EMAIL_HELP)
    notice = sections.add_parser(
        "notice", help="warn every signed-in client that the server goes down for maintenance", parents=[server_after]
    )
    notice.add_argument("minutes", type=int, help="minutes until the maintenance")
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
    digest = sections.add_parser("digest", help="the HTTP Digest verifiers RVP logins need")
    digest_actions = digest.add_subparsers(dest="action", required=True)
    digest_actions.add_parser(
        "missing",
        help="list the accounts without one (their password was set before it was kept): "
        "they cannot log in over RVP until the password is set again, unless they keep an MD5 equivalent",
        parents=[db_after],
    )
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


class AdminAPIError(Exception):
    """
    The admin API could not be reached or refused the request; the text
    says why, for the operator.
    """

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


class AdminClient:
    """
    The running server's admin API, over HTTP(S).
    """

    def __init__(self, url: str, token_file: Optional[str]):
        self.url = url.rstrip("/")
        self._token = None
        if token_file:
            try:
                with open(token_file, encoding="utf-8") as tokens:
                    self._token = tokens.read().strip()
            except OSError as error:
                raise AdminAPIError(f"cannot read {token_file}: {error.strerror}")

    def call(self, method: str, path: str, body: Optional[dict] = None) -> dict:
        headers = {"Accept": "application/json"}
        data = None
        if method != "GET":
            headers["Content-Type"] = "application/json"
            data = json.dumps(body or {}).encode("utf-8")
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=API_TIMEOUT) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read()).get("error", error.reason)
            except (ValueError, AttributeError):
                message = error.reason
            if error.code == 401:
                message = f"{self.url} wants the admin token (--token-file)"
            raise AdminAPIError(str(message), error.code)
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise AdminAPIError(f"no admin API answered at {self.url}: {getattr(reason, 'strerror', None) or reason}")


def _account_path(handle: str, action: str = "") -> str:
    return "/api/accounts/" + urllib.parse.quote(canonical_handle(handle), safe="@") + (f"/{action}" if action else "")


def _ended(count: int) -> str:
    return f"{count} session{'' if count == 1 else 's'} ended"


def _server_for(args, err) -> Optional[AdminClient]:
    """
    The running server's API when one answers at --server and serves the
    database given with --db; None otherwise (nothing to tell then).
    """
    try:
        client = AdminClient(args.server, args.token_file)
        stats = client.call("GET", "/api/server")
    except AdminAPIError as error:
        if error.status == 401:
            print(f"msnp-admin: {error}; its sessions were not told", file=err)
        return None
    if not isinstance(stats, dict) or stats.get("database") != database_identity(args.db, args.postgres):
        return None
    return client


def _run_remote(args, out, err) -> int:
    client = AdminClient(args.server, args.token_file)
    if args.section == "who":
        sessions = client.call("GET", "/api/sessions")["sessions"]
        for session in sessions:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(session["since"]))
            fields = [
                session["handle"],
                session["status"] or "-",
                session["dialect"],
                session["client_version"] or "-",
                session["address"],
                since,
                session["node"],
            ]
            print("\t".join(fields), file=out)
        if not sessions:
            print("msnp-admin: nobody is signed in", file=err)
        return 0
    if args.section == "notice":
        told = client.call("POST", "/api/broadcast", {"minutes": args.minutes})["sessions_told"]
        print(f"maintenance notice ({args.minutes} min) sent to {told} session{'' if told == 1 else 's'}", file=out)
        return 0
    handle = _check_handle(args.email)
    result = client.call("POST", _account_path(handle, args.section))
    done = {"kick": "kicked", "lock": "locked", "unlock": "unlocked"}[args.section]
    print(f"{done} {handle} ({_ended(result['sessions_ended'])})", file=out)
    return 0


REMOTE_SECTIONS = ("who", "kick", "lock", "unlock", "notice")


def main(argv=None, out=sys.stdout, err=sys.stderr, stdin=None) -> int:
    args = build_parser().parse_args(argv)
    if args.db and args.postgres:
        print("msnp-admin: --db and --postgres name two databases: give one", file=err)
        return 2
    if args.section in REMOTE_SECTIONS:
        try:
            return _run_remote(args, out, err)
        except ValueError as error:
            print(f"msnp-admin: {error}", file=err)
            return 2
        except AdminAPIError as error:
            print(f"msnp-admin: {error}", file=err)
            return 1
    if args.section == "migrate":
        return migrate(args, out, err)
    args.db = args.db or DEFAULT_DB
    where = "the PostgreSQL database" if args.postgres else args.db
    if not args.postgres and not os.path.exists(args.db) and not args.create:
        print(f"msnp-admin: no database at {args.db} (--create makes a new one)", file=err)
        return 1
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
            handle = canonical_handle(args.email)
            told = ""
            server = _server_for(args, err)
            if server is not None:
                result = server.call("POST", _account_path(handle, "kick"), {"reason": "password changed"})
                told = f"; {_ended(result['sessions_ended'])}"
            print(f"password changed for {handle}" + (" (no MD5 login)" if args.no_md5 else "") + told, file=out)
        elif (args.section, args.action) == ("user", "del"):
            handle = canonical_handle(args.email)
            server = _server_for(args, err)
            if server is not None:
                # The server deletes it, so that its sessions end and the
                # contacts online are told at once.
                try:
                    result = server.call("DELETE", _account_path(handle))
                except AdminAPIError as error:
                    if error.status == 404:
                        raise NoSuchAccount(handle)
                    raise
                print(f"deleted {handle}; {_ended(result['sessions_ended'])}", file=out)
            else:
                database.delete_account(handle)
                print(f"deleted {handle}", file=out)
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
        elif (args.section, args.action) == ("digest", "missing"):
            for account in database.list_accounts():
                if not account.digest_verifier:
                    print(account.handle + ("" if account.md5_password else "\t(no MD5 equivalent either)"), file=out)
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
    except AdminAPIError as error:
        print(f"msnp-admin: {error}", file=err)
        return 1
    finally:
        database.close()


if __name__ == "__main__":
    sys.exit(main())
