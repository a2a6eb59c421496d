"""Build the two Debian packages from the xaprobe wheel: xaprobe_<v>_all.deb (the probe) and
xaprobe-collector_<v>_amd64.deb (the collector), with Debian's own dpkg-deb.

Each package carries the wheels of its dependencies (fetched here with `pip download`, never committed) and
its postinst builds a venv under /opt from them with Debian's python3-venv, so `apt install ./file.deb`
needs no network. The probe's wheels are pure Python (one package for arm64, armhf and amd64); the
collector's are CPython 3.11 manylinux x86_64 wheels, as Debian 12's python3 and amd64 servers need.

    python packaging/build_deb.py [--dist dist] [--out dist] [--build build/deb]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
from email.utils import formatdate
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "deb"

PROBE_DESCRIPTION = """\
 xaprobe plans and runs internet speed tests at a commune office (a Raspberry Pi
 or a laptop, often on a 4G/5G modem with a metered SIM) so that each commune
 reaches the samples a month its province asks for, keeps every result through
 power cuts and weeks offline, and delivers them exactly once to the collector.
 .
 This package installs with no network: it carries the wheels of its Python
 dependencies and builds its own venv under /opt/xaprobe when it is configured."""

COLLECTOR_DESCRIPTION = """\
 The central service that district and provincial staff run: it enrols the
 probes, takes their measurements, and shows per commune and per operator how
 far each commune is from its monthly samples, in Vietnamese or English, with
 CSV and Excel exports. It keeps its data in SQLite or PostgreSQL.
 .
 This package installs with no network: it carries the wheels of its Python
 dependencies (CPython 3.11, x86_64) and builds its own venv under
 /opt/xaprobe-collector when it is configured."""


@dataclasses.dataclass(frozen=True)
class Package:
    name: str
    arch: str
    requirement: str  # what pip installs into the venv
    command: str  # the console script linked into /usr/bin
    unit: str
    wheels: str  # where the package keeps its wheels
    pip_platform: tuple[str, ...]  # `pip download` options that select the wheels for the target machines
    depends: str
    suggests: str
    summary: str
    description: str
    purge: tuple[str, ...]  # what `apt purge` removes beyond the venv
    samples: dict[str, Path]  # installed path -> source (conffiles)

    @property
    def venv(self) -> str:
        return f"/opt/{self.name}"


PROBE = Package(
    name="xaprobe", arch="all", requirement="xaprobe", command="xaprobe", unit="xaprobe-agent.service",
    wheels="/usr/share/xaprobe/wheels",
    pip_platform=("--platform", "any", "--implementation", "py", "--abi", "none"),
    depends="python3 (>= 3.11), python3-venv, init-system-helpers (>= 1.54~)",
    suggests="modemmanager", summary="speed-test probe for Vietnam's communes", description=PROBE_DESCRIPTION,
    purge=("/var/lib/xaprobe", "/var/lib/private/xaprobe", "/etc/xaprobe/agent.toml", "/etc/xaprobe/token",
           "/etc/xaprobe/.agent.toml.new", "/etc/xaprobe/.token.new"),
    samples={"/etc/xaprobe/agent.toml.sample": REPO / "config" / "agent.toml"},
)
COLLECTOR = Package(
    name="xaprobe-collector", arch="amd64", requirement="xaprobe[collector]", command="xaprobe-collector",
    unit="xaprobe-collector.service", wheels="/usr/lib/xaprobe-collector/wheels",
    pip_platform=("--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                  "--platform", "manylinux2014_x86_64", "--implementation", "cp", "--abi", "cp311"),
    # the wheels are built for CPython 3.11, which is Debian 12's python3
    depends="python3 (>= 3.11), python3 (<< 3.12), python3-venv, init-system-helpers (>= 1.54~)",
    # fonts-dejavu-core gives the server-made PDF its Vietnamese letters; a Depends (or Recommends) would make an
    # offline install fail on a server without it, so it is suggested: /report.pdf says what to install, and
    # the print view (/report) needs no font on the server
    suggests="postgresql, fonts-dejavu-core", summary="central collector for xaprobe speed-test probes",
    description=COLLECTOR_DESCRIPTION,
    purge=("/var/lib/xaprobe-collector", "/var/lib/private/xaprobe-collector", "/etc/xaprobe/collector.toml",
           "/etc/xaprobe/.collector.toml.new"),
    samples={},
)
PACKAGES = (PROBE, COLLECTOR)


def debian_version(version: str) -> str:
    """The Debian version of a Python version: pre-releases sort before the release (0.2.0rc1 -> 0.2.0~rc1)."""
    return re.sub(r"(\d)\.?((?:a|b|rc|dev)\d*)", r"\1~\2", version)


def source_date() -> int:
    """SOURCE_DATE_EPOCH, else the last commit's time, else now: the date in the changelog and every file."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    done = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"], capture_output=True, text=True)
    return int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else int(time.time())


def fetch_wheels(package: Package, wheel: Path, into: Path) -> list[Path]:
    """`pip download` the xaprobe wheel's dependencies for the package's target machines into `into`."""
    into.mkdir(parents=True, exist_ok=True)
    for old in into.glob("*.whl"):
        old.unlink()
    requirement = f"{package.requirement} @ {wheel.resolve().as_uri()}"
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                    "--only-binary=:all:", "--python-version", "3.11", *package.pip_platform, "--dest", str(into),
                    requirement], check=True)
    return sorted(into.glob("*.whl"))


def gzipped(data: bytes) -> bytes:
    """gzip -9n: no name and no time stamp in the header, as Debian policy wants for reproducible files."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0, filename="") as f:
        f.write(data)
    return out.getvalue()


def man_page(package: Package, version: str, date: int) -> str:
    """A man page made from the command's own --help (and each subcommand's), so it never drifts."""
    import argparse as ap

    command = package.command
    if command == "xaprobe":
        from xaprobe.agent.cli import build_parser
    else:
        from xaprobe.collector.cli import build_parser
    parser = build_parser()
    sections = [parser.format_help()]
    for action in parser._actions:  # argparse keeps subcommands here; there is no public accessor
        if isinstance(action, ap._SubParsersAction):
            for name, sub in action.choices.items():
                sections.append(f"{name}:\n{sub.format_help()}")

    def roff(text: str) -> str:
        return "\n".join(("\\&" + line if line.startswith((".", "'")) else line)
                         for line in text.replace("\\", "\\e").splitlines())

    day = time.strftime("%Y-%m-%d", time.gmtime(date))
    return (f'.TH {command.upper()} 1 "{day}" "xaprobe {version}" "User Commands"\n'
            f".SH NAME\n{command} \\- {parser.description.rstrip('.')}\n"
            ".SH DESCRIPTION\n.nf\n" + roff("\n\n".join(sections)) + "\n.fi\n"
            f".SH SEE ALSO\n/usr/share/doc/{package.name}/README.md.gz and\n"
            "https://github.com/xaprobe/xaprobe\n")


def changelog(package: Package, version: str, date: int) -> str:
    when = formatdate(date, usegmt=True).replace("GMT", "+0000")
    return (f"{package.name} ({version}) bookworm; urgency=medium\n\n"
            f"  * Release {version}; see CHANGELOG.md.gz beside this file.\n\n"
            f" -- xaprobe developers <xaprobe@lists.xaprobe.vn>  {when}\n")


def fill(template: str, values: dict[str, str]) -> str:
    return re.sub(r"@([A-Z]+)@", lambda m: values[m.group(1)], template)


def write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)


def stage(package: Package, wheel: Path, version: str, wheels: list[Path], root: Path, date: int) -> None:
    """Lay out the package's files under root, DEBIAN/ included."""
    if root.exists():
        shutil.rmtree(root)
    for w in wheels:
        write(root / package.wheels.lstrip("/") / w.name, w.read_bytes())
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin" / package.command).symlink_to(f"{package.venv}/bin/{package.command}")
    write(root / "lib/systemd/system" / package.unit, (REPO / "systemd" / package.unit).read_bytes())
    for path, source in package.samples.items():
        write(root / path.lstrip("/"), source.read_bytes())
    doc = root / "usr/share/doc" / package.name
    write(doc / "copyright", fill((TEMPLATES / "copyright").read_text(),
                                  {"WHEELS": package.wheels, "PACKAGE": package.name, "VENV": package.venv}))
    write(doc / "changelog.gz", gzipped(changelog(package, debian_version(version), date).encode()))
    write(doc / "CHANGELOG.md.gz", gzipped((REPO / "CHANGELOG.md").read_bytes()))
    write(doc / "README.md.gz", gzipped((REPO / "README.md").read_bytes()))
    write(doc / "wheels.txt", "".join(f"{w.name}\n" for w in wheels))
    page = man_page(package, version, date)
    write(root / "usr/share/man/man1" / f"{package.command}.1.gz", gzipped(page.encode()))

    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    size_kib = sum((p.stat().st_size + 1023) // 1024 for p in files) + len(list(root.rglob("*")))
    values = {"PACKAGE": package.name, "VERSION": debian_version(version), "PYVERSION": version,
              "ARCH": package.arch, "SIZE": str(size_kib), "DEPENDS": package.depends,
              "SUGGESTS": package.suggests, "SUMMARY": package.summary, "DESCRIPTION": package.description,
              "UNIT": package.unit, "VENV": package.venv, "WHEELS": package.wheels,
              "REQUIREMENT": package.requirement, "PURGE": " ".join(package.purge)}
    debian = root / "DEBIAN"
    write(debian / "control", fill((TEMPLATES / "control").read_text(), values))
    for script in ("postinst", "prerm", "postrm"):
        write(debian / script, fill((TEMPLATES / script).read_text(), values), 0o755)
    if package.samples:
        write(debian / "conffiles", "".join(f"{path}\n" for path in package.samples))
    write(debian / "md5sums", "".join(f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(root)}\n"
                                      for p in files))
    for p in [root, *root.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)
        os.utime(p, (date, date), follow_symlinks=False)


def build(package: Package, wheel: Path, out: Path, work: Path) -> Path:
    """Fetch the wheels, stage the files and run dpkg-deb; return the .deb."""
    version = wheel.name.split("-")[1]
    date = source_date()
    wheels = fetch_wheels(package, wheel, work / f"wheels-{package.name}")
    root = work / package.name
    stage(package, wheel, version, wheels, root, date)
    deb = out / f"{package.name}_{debian_version(version)}_{package.arch}.deb"
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(date)}
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(deb)], check=True,
                   env=env, stdout=subprocess.DEVNULL)
    return deb


def find_wheel(dist: Path) -> Path:
    wheels = sorted(dist.glob("xaprobe-*-py3-none-any.whl"))
    if len(wheels) != 1:
        sys.exit(f"build_deb: want exactly one xaprobe wheel in {dist} (run `make dist`), found {len(wheels)}")
    return wheels[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dist", type=Path, default=REPO / "dist", help="where `make dist` put the wheel")
    p.add_argument("--out", type=Path, default=REPO / "dist", help="where the .deb files go")
    p.add_argument("--build", type=Path, default=REPO / "build" / "deb", help="staging and wheel downloads")
    p.add_argument("--only", choices=[pkg.name for pkg in PACKAGES], help="build one package only")
    args = p.parse_args(argv)
    wheel = find_wheel(args.dist)
    for package in PACKAGES:
        if args.only in (None, package.name):
            deb = build(package, wheel, args.out, args.build)
            print(f"{deb} ({deb.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
