"""The README and docs/ are the operator's manual: their links lead somewhere, every
``fs-guard`` command they show is one the CLI takes, and the transcripts they show are
what the command prints."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Set

import pytest

from fs_guard.offline.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHIPPED = REPO / "freeswitch_conf" / "fs_guard.json"

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SHELL_STOP = {"|", "||", "&&", ";", ">", ">>", "2>", "2>&1", "<"}


def _rel(page: Path) -> str:
    return str(page.relative_to(REPO))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _prose_and_blocks(page: Path):
    """(prose lines, code blocks) of a page; a block is its list of lines, dedented."""
    prose: List[str] = []
    blocks: List[List[str]] = []
    block = None
    indent = 0
    for line in page.read_text(encoding="utf-8").splitlines():
        stripped = line.lstrip()
        if stripped.startswith("```"):
            if block is None:
                block, indent = [], len(line) - len(stripped)
            else:
                blocks.append(block)
                block = None
            continue
        if block is None:
            prose.append(line)
        else:
            block.append(line[indent:] if not line[:indent].strip() else line.strip())
    return prose, blocks


def _anchors(page: Path) -> Set[str]:
    prose, _ = _prose_and_blocks(page)
    return {_slug(line.lstrip("#")) for line in prose if line.startswith("#")}


@dataclass(frozen=True)
class Link:
    page: Path
    target: str


def _links() -> List[Link]:
    found = []
    for page in PAGES:
        prose, _ = _prose_and_blocks(page)
        for line in prose:
            found += [Link(page, target) for target in LINK.findall(line)
                      if not re.match(r"^[a-z]+:", target)]  # a web address: not ours to check offline
    return found


@pytest.mark.parametrize("link", _links(), ids=lambda link: f"{_rel(link.page)}->{link.target}")
def test_every_link_leads_to_a_file_and_heading_that_exist(link):
    path, _, anchor = link.target.partition("#")
    target = (link.page.parent / path).resolve() if path else link.page
    assert target.exists(), f"{_rel(link.page)}: {link.target}: no such file"
    if anchor:
        assert anchor in _anchors(target), f"{_rel(link.page)}: {link.target}: no such heading"


@dataclass(frozen=True)
class Command:
    page: Path
    line: str

    def argv(self) -> List[str]:
        words = shlex.split(self.line.lstrip("$ "), comments=True)
        for i, word in enumerate(words):
            if word in SHELL_STOP or word.startswith(("<(", ">", "2>")):
                words = words[:i]
                break
        return words[1:]


def _commands() -> List[Command]:
    found = []
    for page in PAGES:
        _, blocks = _prose_and_blocks(page)
        for block in blocks:
            transcript = any(line.startswith("$ ") for line in block)  # else a script
            for line in block:
                if transcript and not line.startswith("$ "):
                    continue  # what a command printed
                text = line.strip().lstrip("$ ")
                if re.match(r"^(\S*/)?fs-guard(\s|$)", text):  # fs-guard, .venv/bin/fs-guard, /opt/fs-guard/bin/fs-guard
                    found.append(Command(page, text))
    return found


@pytest.mark.parametrize("command", _commands(), ids=lambda c: f"{_rel(c.page)}: {c.line[:60]}")
def test_every_command_shown_is_one_the_cli_takes(command, capsys):
    try:
        build_parser().parse_args(command.argv())
    except SystemExit as stop:
        assert stop.code == 0, f"{_rel(command.page)}: `{command.line}`: {capsys.readouterr().err}"


def test_the_pages_show_commands_at_all():
    """Guards the extraction itself: an empty list would make the test above vacuous."""
    pages = {c.page.name for c in _commands()}
    assert {"README.md", "configuration.md", "replay.md", "install.md"} <= pages


@dataclass(frozen=True)
class Transcript:
    page: Path
    command: str
    expected: List[str]


def _transcripts(program: str) -> List[Transcript]:
    """Blocks that show ``$ fs-guard PROGRAM ...`` and, under it, what it printed."""
    found = []
    for page in PAGES:
        _, blocks = _prose_and_blocks(page)
        for block in blocks:
            for i, line in enumerate(block):
                match = re.match(rf"^\$ (?:\.venv/bin/)?fs-guard ({program}\b.*)$", line.strip())
                if not match:
                    continue
                rest = block[i + 1:]
                end = next((j for j, text in enumerate(rest) if text.startswith("$ ")), len(rest))
                found.append(Transcript(page, match.group(1), rest[:end]))
    return found


def _fs_guard(argv: List[str], env_config: Path = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    env.pop("FS_GUARD_CONFIG", None)
    if env_config is not None:
        env["FS_GUARD_CONFIG"] = str(env_config)
    return subprocess.run([sys.executable, "-m", "fs_guard", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def demo_output() -> List[str]:
    result = _fs_guard(["demo"])
    assert result.returncode == 0, result.stderr
    return [line.rstrip().replace(f"{REPO}/", "") for line in result.stdout.splitlines()]


@pytest.mark.parametrize("transcript", _transcripts("demo"), ids=lambda t: _rel(t.page))
def test_demo_transcripts_show_what_the_demo_prints(transcript, demo_output):
    printed = set(demo_output)
    shown = [line.rstrip() for line in transcript.expected if line.strip() and line.strip() != "..."]
    assert shown, "a transcript with nothing in it checks nothing"
    missing = [line for line in shown if line not in printed]
    assert not missing, f"{_rel(transcript.page)}: not printed by `fs-guard demo`: {missing}"


@pytest.mark.parametrize("transcript", _transcripts("test"), ids=lambda t: f"{_rel(t.page)}: {t.command}")
def test_test_transcripts_show_the_verdict_the_command_gives(transcript):
    """`fs-guard test` examples are decided on the shipped configuration, as installed."""
    result = _fs_guard(shlex.split(transcript.command), env_config=SHIPPED)
    verdicts: Dict[str, str] = {
        "shown": next(line for line in transcript.expected if line.startswith(("ACCEPT", "REJECT"))),
        "printed": result.stdout.splitlines()[0],
    }
    assert verdicts["printed"] == verdicts["shown"], result.stderr
