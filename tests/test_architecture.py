"""The layering rules of docs/architecture.md that import-linter does not express."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Heavy or optional dependencies that may be imported where they are needed, not at module level.
OPTIONAL = {"cv2", "dlib", "face_recognition_models", "boto3", "botocore", "pydot"}
MAX_FUNCTION_LEVEL_IMPORTS = 10


def _function_level_imports(path: Path) -> list[tuple[str, int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(REPO)), node.lineno, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((str(path.relative_to(REPO)), node.lineno, node.module))
            elif isinstance(node, ast.ImportFrom):
                found.append((str(path.relative_to(REPO)), node.lineno, "." * node.level + (node.module or "")))
    return found


def test_function_level_imports_are_few_and_only_for_optional_dependencies() -> None:
    files = [REPO / "run.py", *sorted((REPO / "integrations").rglob("*.py"))]
    imports = [hit for f in files for hit in _function_level_imports(f)]
    not_optional = [hit for hit in imports if hit[2].split(".")[0] not in OPTIONAL]
    assert not_optional == [], f"import these at module level: {not_optional}"
    assert len(imports) <= MAX_FUNCTION_LEVEL_IMPORTS, imports


def test_integrations_top_level_holds_packages_and_settings_only() -> None:
    modules = sorted(p.name for p in (REPO / "integrations").glob("*.py"))
    assert modules == ["__init__.py", "settings.py"]
