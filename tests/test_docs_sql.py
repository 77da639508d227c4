"""Every SQL example in the README and docs/ runs as written, parameters included, against a
real run of the shipped sample crawl (the lineage store an analyst would open).

Examples are the ```sql blocks and the queries of `python -m lineage sql "..."` commands.
Parameters (`?` and `$name`) get real values of that run: a run id, a deduplicated document,
a domain of a kept document, a mix id. mixes/README.md's blocks run in tests/test_mixes.py
(they need a built mix).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def sql_examples(text: str) -> list[str]:
    """```sql blocks (split into statements) and `lineage sql "<query>"` arguments."""
    out = []
    for block in re.findall(r"```sql\n(.*?)```", text, re.S):
        body = "\n".join(ln for ln in block.splitlines() if not ln.strip().startswith("--"))
        out += [s.strip() for s in body.split(";") if s.strip()]
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if "-m lineage sql" in line and "--named" not in line:
                args = shlex.split(line.split("-m lineage sql", 1)[1])
                if args and not args[0].startswith("-"):
                    out.append(args[0])
    return out


def _examples() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for i, q in enumerate(sql_examples(path.read_text(encoding="utf-8"))):
            found.append((f"{path.relative_to(REPO)}#{i}", q))
    return found


EXAMPLES = _examples()


def test_docs_have_sql_examples():
    assert len(EXAMPLES) >= 8, [name for name, _ in EXAMPLES]


@pytest.fixture(scope="module")
def analyst(sample_run):
    """The analyst session (`lineage sql`, notebook: read-only, sandboxed) on the sample run's
    lineage, and real parameter values."""
    from lineage.sandbox import open_analyst_connection

    con = open_analyst_connection(sample_run.lineage_path)
    dup = con.execute("SELECT doc_id FROM duplicates ORDER BY doc_id LIMIT 1").fetchone()
    url = con.execute("SELECT url FROM documents ORDER BY url LIMIT 1").fetchone()[0]
    domain = re.match(r"^[a-z]+://([^/:]+)", url).group(1)
    values = {
        "run_id": sample_run.run_id,
        "doc_id": dup[0] if dup else None,
        "domain": domain,
        "mix_id": "no-such-mix",
        "url": url,
    }
    yield con, values
    con.close()


def _bind(sql: str, values: dict) -> tuple[str, list | dict]:
    named = re.findall(r"\$([A-Za-z_]\w*)", sql)
    if named:
        return sql, {n: values[n] for n in named}
    # `col = ?`: the column compared names the value
    cols = re.findall(r"(\w+)\s*=\s*\?", sql)
    assert len(cols) == sql.count("?"), f"cannot tell what each ? is: {sql}"
    return sql, [values[c] for c in cols]


@pytest.mark.parametrize("name,sql", EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_sql_example_runs_as_written(name, sql, analyst):
    con, values = analyst
    sql, params = _bind(sql, values)
    rows = con.execute(sql, params).fetchall()
    if params and any(
        k in ("run_id", "doc_id")
        for k in (params if isinstance(params, dict) else re.findall(r"(\w+)\s*=\s*\?", sql))
    ):
        assert rows, f"{name}: no rows for a value that exists in the sample run"
