"""FreeSWITCH's CDR CSV (mod_cdr_csv's ``Master.csv``) as its shipped templates write it.

The vanilla ``cdr_csv.conf.xml`` template ``example`` (15 fields) and mod_cdr_csv's
built-in ``default`` (the first 13, with a space before ``accountcode``)::

    "caller_id_name","caller_id_number","destination_number","context","start_stamp",
    "answer_stamp","end_stamp","duration","billsec","hangup_cause","uuid","bleg_uuid",
    "accountcode"[,"read_codec","write_codec"]

mod_cdr_csv writes no header and escapes nothing: a caller's display name (or From user)
holding ``","`` adds cells. So a line is read from the right, where FreeSWITCH's own
values are: the template is the one whose start, answer and end stamps (``YYYY-MM-DD
HH:MM:SS``, the answer stamp empty for a call never answered) fall where its fields
put them, counting from the end of the line. The stamps are local time.
"""

from __future__ import annotations

from typing import List, Tuple

#: Fields of the two shipped templates.
EXAMPLE_FIELDS = 15
DEFAULT_FIELDS = 13


class CdrError(ValueError):
    """Why one line is not a CDR of a shipped template."""


def split(line: str) -> Tuple[str, str, str, str, str, str, str]:
    """What replay reads of one CDR line: destination_number, context, start_stamp,
    end_stamp (both local time), duration (whole seconds from start to hang-up; "" if not
    written), uuid and accountcode ("" when the channel had none). CdrError says why a
    line is not a CDR."""
    text = line.rstrip("\r\n")
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise CdrError("not a CDR line (mod_cdr_csv quotes every field: \"...\",\"...\")")
    cells = text[1:-1].replace('", "', '","').split('","')  # the default template's space, then every cell
    count = len(cells)
    for fields in (EXAMPLE_FIELDS, DEFAULT_FIELDS):
        at = count - fields  # cells added by a caller's name or number holding '","'
        if at >= 0 and _stamps(cells, at + 4):
            return (cells[at + 2], cells[at + 3], cells[at + 4], cells[at + 6], cells[at + 7], cells[at + 10],
                    cells[at + 12])
    raise CdrError(f"{count} quoted fields without start, answer and end stamps as the 13- or 15-field "
                   "templates place them")


def looks_like(line: str) -> bool:
    """Whether ``line`` (a file's first) is a CDR of a shipped template."""
    try:
        split(line)
    except CdrError:
        return False
    return True


def _stamps(cells: List[str], start: int) -> bool:
    """Start, answer (or empty) and end stamps from ``start`` on: by their shape, which no other
    field of the templates has (the digits are checked when the stamps are read)."""
    begin, answer, end = cells[start], cells[start + 1], cells[start + 2]
    return (len(begin) == 19 and begin[10] == " " and begin[13] == ":" and begin[4] == "-"
            and len(end) == 19 and end[10] == " " and end[13] == ":" and end[4] == "-"
            and (not answer or len(answer) == 19 and answer[10] == " " and answer[13] == ":"))
