"""The documentation names real things: what ``docs/`` points at exists in the code.

The docs name files (``messaging/outbox/send.py``), Python objects
(``campaigns.engine.enroll:enroll``, ``messaging.signals.link_clicked``), management commands
(``manage.py tick``), settings (``SEND_TASK_BATCH_SIZE``) and endpoints
(``GET /api/v1/messages``). When code moves or is renamed, these tests name the doc that still
points at the old place; and ``docs/api.md`` must list every route of the REST API and the
provider webhooks.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import get_commands
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404

from trackstat.health import HEALTH_PATH

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
API_DOC = ROOT / "docs" / "api.md"
APPS = ("trackstat", "patients", "messaging", "campaigns", "reports", "demo")
# Top-level folders a path in the docs may start with (``var/`` is made at run time).
FOLDERS = (*APPS, "docs", "tests", "benchmarks", "templates", "static", ".ci")

BACKTICKED = re.compile(r"`([^`\n]+)`")
# ``package.module:name`` or ``path/to/module.py:name`` (``name`` may be ``Class.attribute``).
APP = "(?:" + "|".join(APPS) + ")"
OBJECT_REF = re.compile(
    rf"^(?P<module>{APP}(?:\.\w+)*|{APP}(?:/\w+)*\.py):(?P<name>[A-Za-z_][\w.]*)$"
)
DOTTED_REF = re.compile(rf"^{APP}(?:\.\w+)+$")
PATH_REF = re.compile(r"^\.?[\w-]+(?:/[\w.-]+)*/?$")
ROOT_FILE = re.compile(r"^[\w.-]+\.(?:py|md|yml|yaml|toml|lock|example)$|^(?:Makefile|Procfile)$")
COMMAND = re.compile(r"manage\.py (\w+)")
SETTING = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
METHOD = "(?:GET|POST|PUT|PATCH|DELETE)"
# ``GET /api/v1/messages``, ``GET|POST /api/v1/campaigns``
ENDPOINT = re.compile(rf"^(?P<methods>{METHOD}(?:\|{METHOD})*) (?P<path>/\S*)$")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


def _text(doc: Path) -> str:
    """The doc's text, less its "Not built yet" section: what it names there does not exist
    on purpose."""
    text = doc.read_text(encoding="utf-8")
    return re.sub(r"^## Not built yet\n.*?(?=^## |\Z)", "", text, flags=re.MULTILINE | re.DOTALL)


def _tokens(doc: Path) -> list[str]:
    return BACKTICKED.findall(_text(doc))


def _diagram_words(doc: Path) -> list[str]:
    """Module paths and dotted names written in the doc's diagrams (fenced code blocks)."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", _text(doc), flags=re.MULTILINE | re.DOTALL)
    words = re.compile(rf"\b{APP}(?:/\w+)+\.py\b|\b{APP}(?:\.\w+)+\b")
    return [word for block in blocks for word in words.findall(block)]


def _refs(pattern: re.Pattern) -> list[tuple[str, str]]:
    return sorted(
        {
            (doc.name, token.strip())
            for doc in DOCS
            for token in [*_tokens(doc), *_diagram_words(doc)]
            if pattern.match(token.strip())
        }
    )


def _object_exists(module_name: str, name: str) -> bool:
    if module_name.endswith(".py"):
        module_name = module_name.removesuffix(".py").replace("/", ".")
    try:
        target = importlib.import_module(module_name)
    except ImportError:
        return False
    for part in name.split("."):
        if not hasattr(target, part):
            return False
        target = getattr(target, part)
    return True


def _dotted_exists(dotted: str) -> bool:
    """A module, or an object of one (``messaging.signals.link_clicked``)."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        rest = parts[split:]
        return not rest or _object_exists(".".join(parts[:split]), ".".join(rest))
    return False


def _sample_path(path: str) -> str:
    """A documented path with its ``{parameters}`` filled in, to resolve it."""
    path = path.split("?", 1)[0]
    return re.sub(r"\{(\w+)\}", lambda m: "1" if m.group(1).endswith("id") else "X1", path)


def test_docs_exist():
    assert {doc.name for doc in DOCS} >= {"architecture.md", "api.md", "operations.md"}


@pytest.mark.parametrize(("doc", "ref"), _refs(OBJECT_REF))
def test_named_objects_exist(doc, ref):
    match = OBJECT_REF.match(ref)
    assert _object_exists(match["module"], match["name"]), f"{doc}: `{ref}` does not exist"


@pytest.mark.parametrize(("doc", "ref"), _refs(DOTTED_REF))
def test_dotted_names_exist(doc, ref):
    assert _dotted_exists(ref), f"{doc}: `{ref}` is neither a module nor an object of one"


def _is_repo_path(token: str) -> bool:
    """A path in the repository: under one of its folders, or a file at its root."""
    if not PATH_REF.match(token):
        return False
    if "/" in token:
        return token.split("/", 1)[0] in FOLDERS
    return bool(ROOT_FILE.match(token))


def _path_refs() -> list[tuple[str, str]]:
    return sorted(
        {
            (doc.name, token.strip())
            for doc in DOCS
            for token in [*_tokens(doc), *_diagram_words(doc)]
            if _is_repo_path(token.strip())
        }
    )


@pytest.mark.parametrize(("doc", "path"), _path_refs())
def test_named_files_exist(doc, path):
    target = ROOT / path
    assert target.exists(), f"{doc}: `{path}` does not exist"
    if path.endswith("/"):
        assert target.is_dir(), f"{doc}: `{path}` is not a folder"


def test_markdown_links_resolve():
    broken = []
    for doc in [*DOCS, ROOT / "README.md"]:
        for target in MARKDOWN_LINK.findall(doc.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.name} → {target}")
    assert not broken, broken


def test_readme_links_every_doc():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [doc.name for doc in DOCS if f"(docs/{doc.name})" not in readme]
    assert not missing, f"README.md does not link {missing}"


def test_named_commands_exist():
    commands = get_commands()
    named = {(doc.name, name) for doc in DOCS for name in COMMAND.findall(_text(doc))}
    missing = [f"{doc}: manage.py {name}" for doc, name in sorted(named) if name not in commands]
    assert not missing, missing


def test_named_settings_exist():
    """A setting the docs name is one ``.env.example`` documents or one Django has."""
    documented = (ROOT / ".env.example").read_text(encoding="utf-8")
    missing = [
        f"{doc}: {name}"
        for doc, name in _refs(SETTING)
        if not re.search(rf"\b{name}\b", documented) and not hasattr(settings, name)
    ]
    assert not missing, missing


def _endpoint_refs(docs: list[Path] = DOCS) -> list[tuple[str, str, str]]:
    refs = []
    for doc in docs:
        for token in _tokens(doc):
            match = ENDPOINT.match(token.strip())
            if match:
                refs.append((doc.name, match["methods"], match["path"]))
    return sorted(set(refs))


@pytest.mark.parametrize(("doc", "methods", "path"), _endpoint_refs())
def test_named_endpoints_exist(doc, methods, path):
    if path == HEALTH_PATH:
        return  # answered by a middleware (``trackstat.health``), before any route
    try:
        match = resolve(_sample_path(path))
    except Resolver404:
        pytest.fail(f"{doc}: {path} matches no route")
    view = getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)
    if view is None:  # a function view: its allowed methods are not introspectable
        return
    for method in methods.split("|"):
        assert hasattr(view, method.lower()), f"{doc}: {method} {path} is not allowed"


def _routes(resolver: URLResolver, prefix: str = "") -> list[str]:
    routes = []
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes += _routes(pattern, route)
        elif isinstance(pattern, URLPattern):
            routes.append(route)
    return routes


def _normalized(path: str) -> str:
    """``/api/v1/campaigns/{campaign_id}`` and ``api/v1/campaigns/<int:campaign_id>`` alike."""
    path = re.sub(r"<(?:\w+:)?\w+>|\{\w+\}", "{}", path.split("?", 1)[0])
    return "/" + path.lstrip("/")


def test_api_doc_lists_every_route():
    documented = {_normalized(path) for _doc, _methods, path in _endpoint_refs([API_DOC])}
    routes = {
        _normalized(route)
        for route in _routes(get_resolver())
        if route.startswith(("api/v1/", "webhooks/"))
    }
    missing = sorted(routes - documented)
    assert not missing, f"docs/api.md does not describe {missing}"
