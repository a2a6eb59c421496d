"""Vietnamese first (#13): every message of the probe has its Vietnamese, the shipped catalog is the
translated one, and `xaprobe` speaks Vietnamese unless LANG or --lang asks for English."""

from __future__ import annotations

import gettext
import io
import os
import re
import string
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from xaprobe import i18n

REPO = Path(__file__).resolve().parent.parent
PO = REPO / "core" / "locale" / "vi" / "LC_MESSAGES" / "xaprobe.po"
# the shipped catalog, where the installed package looks for it
MO = i18n.LOCALE_DIR / "vi" / "LC_MESSAGES" / "xaprobe.mo"
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}  # as the Makefile's `catalogs` target extracts


def catalog():
    with open(PO, "rb") as f:
        return read_po(f)


def code_messages() -> dict[str, str]:
    """Every message the probe's code marks for translation, and where it is (msgid -> file:line)."""
    found: dict[str, str] = {}
    for folder in ("core", "agent", "uploader"):
        for filename, lineno, message, _comments, _context in extract_from_dir(
                REPO / folder, method_map=[("**.py", "python")], keywords=KEYWORDS):
            for msgid in message if isinstance(message, tuple) else (message,):
                if msgid:
                    found.setdefault(msgid, f"{folder}/{filename}:{lineno}")
    return found


def test_every_message_in_the_code_has_its_vietnamese():
    translated = {m.id if isinstance(m.id, str) else m.id[0]: m.string for m in catalog() if m.id}
    messages = code_messages()
    assert len(messages) > 200  # the extraction found the code's messages (not an empty folder)
    untranslated = [f"{where}: {msgid!r}" for msgid, where in messages.items()
                    if not (translated.get(msgid) or "").strip()]
    assert not untranslated, "no Vietnamese for (run `make catalogs` and translate):\n" + "\n".join(untranslated)


def test_every_catalog_entry_is_translated_and_none_is_fuzzy():
    entries = [m for m in catalog() if m.id]
    assert [m.id for m in entries if not m.string or m.fuzzy] == []


def test_the_shipped_mo_is_the_compiled_po():
    compiled = io.BytesIO()
    write_mo(compiled, catalog())
    compiled.seek(0)
    with open(MO, "rb") as f:
        shipped = gettext.GNUTranslations(f)
    fresh = gettext.GNUTranslations(compiled)
    assert shipped._catalog == fresh._catalog, "core/locale/vi/LC_MESSAGES/xaprobe.mo is stale: run `make catalogs`"


_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0 +-]*\d*(?:\.\d+)?[a-zA-Z%]")


def placeholders(text: str, percent: bool) -> set[str]:
    """The fields a message is formatted with: {name!r:spec} for str.format, %(name)s / %s for argparse's."""
    if percent:
        return set(_PERCENT.findall(text))
    return {"{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            for _literal, name, spec, conversion in string.Formatter().parse(text) if name is not None}


@pytest.mark.parametrize("message", [m for m in catalog() if m.id], ids=lambda m: str(m.id)[:60])
def test_a_translation_keeps_the_placeholders_of_its_message(message):
    percent = "python-format" in message.flags
    assert placeholders(message.string, percent) == placeholders(message.id, percent)
    # the spaces and newline a message is glued to others with ("usage: ", " and ", "...\n")
    assert message.string[:1].isspace() == message.id[:1].isspace()
    assert message.string[-1:].isspace() == message.id[-1:].isspace()


def test_the_language_is_vietnamese_unless_asked_for_english():
    assert i18n.choose(environ={}) == "vi"
    assert i18n.choose(environ={"LANG": "C.UTF-8"}) == "vi"
    assert i18n.choose(environ={"LANG": "vi_VN.UTF-8"}) == "vi"
    assert i18n.choose(environ={"LANG": "en_US.UTF-8"}) == "en"
    assert i18n.choose(environ={"LANG": "en_US.UTF-8", "LC_MESSAGES": "vi_VN.UTF-8"}) == "vi"
    assert i18n.choose(environ={"LANG": "vi_VN.UTF-8", "XAPROBE_LANG": "en"}) == "en"
    assert i18n.choose("en", environ={"LANG": "vi_VN.UTF-8"}) == "en"


def xaprobe(tmp_path: Path, *args: str, lang: str = "vi_VN.UTF-8") -> subprocess.CompletedProcess:
    """Run the probe's command as an officer would: LANG set by the system, no XAPROBE_LANG, no config of theirs."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "LANG": lang,
           "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XAPROBE_CONFIG": str(tmp_path / "cfg" / "agent.toml")}
    return subprocess.run([sys.executable, "-m", "xaprobe.agent", *args], capture_output=True, text=True,
                          timeout=60, env=env)


BAD = 'device_id = "p1"\ncommune_code = "x1"\ntagret = 300\n[[links]]\nname = "viettel"\ninterface = "wwan0"\n'
GOOD = 'device_id = "p1"\nstore = "probe.db"\n[[links]]\nname = "viettel"\ninterface = "wwan0"\n'


def test_help_error_status_and_doctor_in_vietnamese_from_lang(tmp_path):
    (tmp_path / "bad.toml").write_text(BAD)
    (tmp_path / "agent.toml").write_text(GOOD)

    done = xaprobe(tmp_path, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("cách dùng: xaprobe")  # argparse's own words
    assert "tùy chọn:" in done.stdout and "hiện trợ giúp này rồi thoát" in done.stdout
    assert "đo ngay một lần trên mỗi đường truyền" in done.stdout  # `measure`'s help
    assert "usage" not in done.stdout

    done = xaprobe(tmp_path, "frobnicate")
    assert done.returncode == 2 and "xaprobe: lỗi: tham số COMMAND: lựa chọn không hợp lệ: 'frobnicate'" in done.stderr

    done = xaprobe(tmp_path, "config", "check", str(tmp_path / "bad.toml"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f'{tmp_path / "bad.toml"}: commune_code: phải là mã xã dạng số, hiện là "x1"' in done.stderr
    assert "tagret: khóa không xác định (ý bạn là 'target'?)" in done.stderr

    done = xaprobe(tmp_path, "--config", str(tmp_path / "agent.toml"), "status")
    assert done.returncode == 0, done.stderr
    assert "chưa lưu lần đo nào" in done.stderr  # no store yet, and none made
    assert not (tmp_path / "probe.db").exists()
    link_line = next(line for line in done.stdout.splitlines() if line.strip().startswith("viettel:"))
    assert "0 mẫu đo (chỉ tiêu 300; 0 lần lỗi)" in link_line and "lần đo tiếp theo" in link_line
    assert "thiết bị p1 · xã - · tháng " in done.stdout and "gửi dữ liệu: 0 đang chờ" in done.stdout

    done = xaprobe(tmp_path, "--config", str(tmp_path / "agent.toml"), "doctor")
    assert done.returncode == 1
    assert "collector: chưa có collector_url: mẫu đo chỉ nằm lại trên thiết bị này" in done.stdout
    assert done.stdout.rstrip().endswith("mẫu đo sẽ KHÔNG được gửi về: hãy sửa từng mục FAIL ở trên")


@pytest.mark.parametrize("how", [("--lang", "en"), ("--lang=en",), ()])
def test_the_same_in_english_with_lang_en_or_an_english_lang(tmp_path, how):
    (tmp_path / "bad.toml").write_text(BAD)
    (tmp_path / "agent.toml").write_text(GOOD)
    lang = "en_US.UTF-8" if not how else "vi_VN.UTF-8"

    done = xaprobe(tmp_path, *how, "--help", lang=lang)
    assert done.stdout.startswith("usage: xaprobe") and "run one test now on each link" in done.stdout
    assert "show this help message and exit" in done.stdout

    done = xaprobe(tmp_path, *how, "config", "check", str(tmp_path / "bad.toml"), lang=lang)
    assert done.returncode == 1
    assert 'commune_code: must be a numeric commune code, got "x1"' in done.stderr
    assert "tagret: unknown key (did you mean 'target'?)" in done.stderr

    done = xaprobe(tmp_path, *how, "--config", str(tmp_path / "agent.toml"), "status", lang=lang)
    assert done.returncode == 0, done.stderr
    assert "viettel: 0 samples (target 300; 0 failed)" in done.stdout and "no tests stored yet" in done.stderr

    done = xaprobe(tmp_path, *how, "--config", str(tmp_path / "agent.toml"), "doctor", lang=lang)
    assert done.stdout.rstrip().endswith("samples will NOT flow: fix each FAIL above")
