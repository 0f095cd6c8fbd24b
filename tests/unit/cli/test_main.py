"""The tradeops command line scaffold."""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradeops import __version__
from tradeops.cli import main as cli_main
from tradeops.cli.main import SUBCOMMANDS, Subcommand, build_parser, load_subcommands, main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: tradeops" in capsys.readouterr().out


def test_unknown_command_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_every_registered_command_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, subparser in sub.choices.items():  # type: ignore[union-attr]
        assert subparser.format_help().startswith("usage: tradeops " + name)


# -- A listed sub-command that cannot be imported -----------------------------------


def write_package(root: Path, package: str, files: dict[str, str]) -> None:
    """A throwaway package on ``root`` (prepended to sys.path by the caller)."""
    (root / package).mkdir()
    (root / package / "__init__.py").write_text("")
    for name, text in files.items():
        (root / package / name).write_text(text)


REGISTER = "def register(subparsers):\n    subparsers.add_parser('ok', help='works')\n"


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A sys.path entry for throwaway packages, with TRADEOPS_DEBUG unset."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(cli_main.DEBUG_ENV, raising=False)
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("tradeops_fake_")]:
        del sys.modules[name]  # each test's packages are its own


def use_table(monkeypatch: pytest.MonkeyPatch, table: dict[str, Subcommand]) -> None:
    monkeypatch.setattr(cli_main, "SUBCOMMANDS", table)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], [], ["ok"], ["release", "--help"]])
def test_a_core_command_that_cannot_import_fails_every_invocation(
    scratch: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    write_package(
        scratch,
        "tradeops_fake_core",
        {"ok.py": REGISTER, "kill.py": "from os import no_such_name\n"},
    )
    use_table(
        monkeypatch,
        {
            "ok": Subcommand("tradeops_fake_core.ok"),
            "release": SUBCOMMANDS["release"],
            "kill": Subcommand("tradeops_fake_core.kill"),
        },
    )
    assert main(argv) == cli_main.EXIT_BROKEN
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith("tradeops: error: the sub-command 'kill' is broken: ")
    assert "cannot import tradeops_fake_core.kill: ImportError: cannot import name" in lines[0]
    assert "no_such_name" in lines[0]
    assert "Traceback" not in err
    assert cli_main.DEBUG_ENV in lines[-1]


def test_every_broken_command_is_named_and_debug_adds_tracebacks(
    scratch: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_package(
        scratch,
        "tradeops_fake_two",
        {"kill.py": "raise RuntimeError('no config')\n", "halt.py": "def broken(:\n"},
    )
    use_table(
        monkeypatch,
        {
            "kill": Subcommand("tradeops_fake_two.kill"),
            "halt": Subcommand("tradeops_fake_two.halt"),
        },
    )
    monkeypatch.setenv(cli_main.DEBUG_ENV, "1")
    assert main(["--help"]) == cli_main.EXIT_BROKEN
    err = capsys.readouterr().err
    assert "'kill' is broken: cannot import tradeops_fake_two.kill: RuntimeError: no config" in err
    assert "'halt' is broken: cannot import tradeops_fake_two.halt: SyntaxError" in err
    assert err.count("Traceback (most recent call last)") == 2


def test_a_core_command_whose_package_is_missing_is_never_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # What the old table did to "status": a missing package of a core command.
    use_table(monkeypatch, {"refapp": Subcommand("tradeops_refapp.cli")})
    monkeypatch.setitem(sys.modules, "tradeops_refapp", None)
    monkeypatch.delitem(sys.modules, "tradeops_refapp.cli", raising=False)
    assert main(["refapp", "--help"]) == cli_main.EXIT_BROKEN
    err = capsys.readouterr().err
    assert "the sub-command 'refapp' is broken: cannot import tradeops_refapp.cli: " in err
    assert "ModuleNotFoundError" in err


class _Uninstalled(importlib.abc.MetaPathFinder):
    """Finds ``package`` nowhere, as on a host where its extra is not installed."""

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname == self.package or fullname.startswith(self.package + "."):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)


def hide_package(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``package`` unimportable (its modules forgotten), restored after the test."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_Uninstalled(package), *sys.meta_path])


def test_an_extra_not_installed_is_not_offered_and_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_table(monkeypatch, dict(SUBCOMMANDS))
    hide_package(monkeypatch, "tradeops.sim")
    loaded = load_subcommands()
    assert set(loaded.absent) == {"sim"}
    parser = build_parser(loaded)
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "sim" not in sub.choices  # type: ignore[operator]
    assert "release" in sub.choices  # type: ignore[operator]
    assert "sim" not in parser.format_help()

    assert main(["sim", "run", "--config", "x.yml"]) == cli_main.EXIT_NOT_INSTALLED
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "tradeops: error: the 'sim' sub-command is a staging extra, not installed on this "
        "host (install tradeops-staging)\n"
    )
    # The other commands still work on that host.
    with pytest.raises(SystemExit) as exc:
        main(["release", "--help"])
    assert exc.value.code == 0


def test_the_test_fleet_extra_not_installed_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_table(monkeypatch, dict(SUBCOMMANDS))
    hide_package(monkeypatch, "tradeops.testing")
    assert main(["fleet", "--help"]) == cli_main.EXIT_NOT_INSTALLED
    assert "is a staging extra, not installed" in capsys.readouterr().err


def test_the_reference_strategy_not_installed_says_where_it_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A production host's venv has no strategy: the refapp runs from its release.
    use_table(monkeypatch, dict(SUBCOMMANDS))
    hide_package(monkeypatch, "tradeops_refapp")
    assert main(["refapp", "status"]) == cli_main.EXIT_NOT_INSTALLED
    assert "current/bin/refapp" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ({"cli.py": "import tradeops_no_such_dependency\n"}, "ModuleNotFoundError"),
        ({"cli.py": "import tradeops_fake_extra.engine\n"}, "ModuleNotFoundError"),
        ({"cli.py": "def register(:\n"}, "SyntaxError"),
    ],
    ids=["missing-dependency", "missing-own-module", "syntax-error"],
)
def test_an_installed_extra_that_fails_deeper_is_a_hard_failure(
    scratch: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    error: str,
) -> None:
    write_package(scratch, "tradeops_fake_extra", files)
    use_table(monkeypatch, {"sim": Subcommand("tradeops_fake_extra.cli", extra="staging")})
    assert main(["--help"]) == cli_main.EXIT_BROKEN
    err = capsys.readouterr().err
    assert "the staging extra sub-command 'sim' is broken: " in err
    assert f"cannot import tradeops_fake_extra.cli: {error}" in err


def test_an_extra_whose_module_is_missing_from_its_package_is_a_hard_failure(
    scratch: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The package is installed, the module the table names is not: a broken install.
    write_package(scratch, "tradeops_fake_partial", {})
    use_table(monkeypatch, {"sim": Subcommand("tradeops_fake_partial.cli", extra="staging")})
    assert main(["sim", "--help"]) == cli_main.EXIT_BROKEN
    assert "No module named 'tradeops_fake_partial.cli'" in capsys.readouterr().err


def test_the_real_table_imports_cleanly() -> None:
    loaded = load_subcommands()
    assert loaded.absent == {}  # this venv has the staging and test extras too
    assert set(loaded.modules) == set(SUBCOMMANDS)
    for name, spec in SUBCOMMANDS.items():
        module = importlib.import_module(spec.module)
        assert callable(module.register), name
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(SUBCOMMANDS) <= set(sub.choices)  # type: ignore[arg-type]


def test_the_extras_are_the_simulator_and_the_test_fleet() -> None:
    extras = {name: spec.package for name, spec in SUBCOMMANDS.items() if spec.extra}
    assert extras == {
        "sim": "tradeops.sim",
        "fleet": "tradeops.testing",
        "refapp": "tradeops_refapp",
    }
