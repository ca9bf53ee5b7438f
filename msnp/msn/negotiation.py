"""
What the dispatch and notification servers both answer before login: the
dialect (VER), the security package (INF, MSNP2-7), and the client version
check (CVR).
"""

from __future__ import annotations

from typing import Optional

from msnp.msn import dialects, errors, wire
from msnp.msn.errors import CloseConnection, CommandError


def agree_dialect(session, command) -> dialects.Dialect:
    """
    Answer C{VER} with the highest dialect both sides speak; C{VER t 0} and a
    close when there is none.
    """
    dialect = dialects.choose_dialect(command.args, session.config.supported_dialects)
    if dialect is None:
        session.send(wire.format_line("VER", command.trid, 0))
        raise CloseConnection("no common dialect")
    session.send(wire.format_line("VER", command.trid, dialect.name))
    return dialect


def answer_inf(session, command) -> None:
    session.send(wire.format_line("INF", command.trid, session.dialect.security_packages))


def answer_cvr(session, command) -> Optional[str]:
    """
    Answer C{CVR}: the client's own version is the recommended and minimum
    one.  Returns the client's name and version for the operator.
    """
    args = command.args
    if len(args) < 6:
        raise CommandError(errors.BAD_CVR)
    version = args[5]
    config = session.config
    session.send(wire.format_line("CVR", command.trid, version, version, version, config.web_base, config.web_base))
    return f"{args[4]} {version}"
