"""The docs stay true to the repository: every relative link resolves, the README's example runs, its
test command is the one CI runs, and the Tensor docstring lists every method the op families install."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(path):
    """GitHub's heading anchors of a Markdown file: lowercase, punctuation dropped, spaces to hyphens."""
    out = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def _links(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [m.group(1) for m in _LINK.finditer(text)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    broken = []
    for link in _links(doc):
        if re.match(r"[a-z]+:", link):
            continue  # http(s), mailto: not checked offline
        target, _, anchor = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        if not path.exists():
            broken.append(f"{link} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{link} (no heading with that anchor)")
        elif not path.is_relative_to(ROOT):
            broken.append(f"{link} (outside the repository)")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links: {broken}"


def test_readme_first_taste_runs(capsys):
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## A first taste.*?```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    loss = float(re.search(r"loss ([\d.]+)", capsys.readouterr().out).group(1))
    assert loss < 0.5


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in readme


def test_tensor_docstring_lists_every_installed_method():
    import somanet.autograd.tensor as tensor_module

    doc = tensor_module.__doc__
    missing = []
    for path in sorted((ROOT / "somanet" / "ops").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "install":
                for kw in node.keywords:
                    if kw.arg and not re.search(rf"(?<![\w.]){re.escape(kw.arg)}(?!\w)", doc):
                        missing.append(f"{path.name}: {kw.arg}")
    assert not missing, f"add these to the docstring of somanet/autograd/tensor.py: {missing}"
