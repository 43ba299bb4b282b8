"""The MongoDB conversation store's versioned update, and flow diagrams."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.diagram import draw
from engine.loader import load_flow
from engine.store import Conversation, VersionConflict
from integrations.hooks.registry import build_registry
from integrations.storage.connection import connect_db
from tests.conftest import fresh_db_uri
from integrations.storage.conversations import ConversationDoc, MongoConversationStore

REPO = Path(__file__).resolve().parents[2]


async def test_mongo_store_saves_atomically_by_version() -> None:
    connect_db(fresh_db_uri("conversations"))
    store = MongoConversationStore()
    first = Conversation("b", 1, 1, "f", "a", {"x": [1, {"y": 2}]}, deadline=123.5)
    await store.save(first)
    assert first.version == 1
    again = await store.get(("b", 1))
    assert (again.state, again.data, again.deadline) == ("a", {"x": [1, {"y": 2}]}, 123.5)
    again.state = "b"
    await store.save(again)
    first.state = "stale"
    with pytest.raises(VersionConflict):
        await store.save(first)  # read at version 1, but it is at 2 now
    with pytest.raises(VersionConflict):
        await store.save(Conversation("b", 1, 1, "f", "new"))  # a second "first" insert
    assert (await store.get(("b", 1))).state == "b"
    assert [c.chat_id for c in await store.with_deadlines()] == [1]
    assert await store.count() == 1
    assert "deadline_1" in ConversationDoc._get_collection().index_information()


@pytest.mark.parametrize("name", ["teacher", "student", "example"])
def test_flows_draw_as_mermaid_and_dot(name: str) -> None:
    flow = load_flow(REPO / "flows" / f"{name}.yaml", build_registry())
    mermaid = draw(flow.spec, "mermaid")
    assert mermaid.startswith("stateDiagram-v2")
    assert all(state in mermaid for state in flow.spec.states)
    dot = draw(flow.spec, "dot")
    assert dot.lstrip().startswith("digraph") and flow.spec.start in dot


def test_draw_cli_writes_the_diagram(tmp_path: Path) -> None:
    out = tmp_path / "example.md"
    run = subprocess.run([sys.executable, "run.py", "draw", "flows/example.yaml", "--format", "markdown",
                          "-o", str(out)], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "```mermaid" in out.read_text()


def test_shipped_diagrams_are_up_to_date() -> None:
    from engine.diagram import markdown

    for name in ("teacher", "student", "example"):
        flow = load_flow(REPO / "flows" / f"{name}.yaml", build_registry())
        flow.spec.path = f"flows/{name}.yaml"
        shipped = (REPO / "docs" / "diagrams" / f"{name}.md").read_text()
        assert shipped == markdown(flow.spec), f"run: python run.py draw flows/{name}.yaml --format markdown -o docs/diagrams/{name}.md"
