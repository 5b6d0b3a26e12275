"""The docs point at real things: every test named in docs/security.md exists,
every setting read in config/settings/base.py is in docs/configuration.md."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_named_in_the_security_doc_exists():
    text = (ROOT / "docs" / "security.md").read_text()
    references = re.findall(r"`(tests/[\w/]+\.py)((?:::\w+)?)`", text)
    # "`::name`" right after a file reference names another test of the same file.
    chained = re.findall(r"`(tests/[\w/]+\.py)::\w+`((?:, `::\w+`)+)", text)
    names = {(path, name.removeprefix("::")) for path, name in references}
    for path, rest in chained:
        names |= {(path, name) for name in re.findall(r"`::(\w+)`", rest)}
    assert names
    for path, name in sorted(names):
        source = (ROOT / path).read_text()
        if name:
            assert re.search(rf"^def {name}\(", source, re.MULTILINE), f"{path}::{name} is gone"


def test_every_setting_from_the_environment_is_documented():
    settings_source = (ROOT / "config" / "settings" / "base.py").read_text()
    documented = (ROOT / "docs" / "configuration.md").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_0-9]+)"', settings_source))
    assert "DATABASE_URL" in read
    missing = sorted(name for name in read if f"`{name}`" not in documented)
    assert missing == []
