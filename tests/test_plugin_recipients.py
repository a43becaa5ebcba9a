"""Issue 19: the vendor runtime loads a file written by the Python package for several
recipients through bmcrypt's C side alone (libbmcrypt.so: the vendor's decrypt_lib, the raw
callback, bmcrypt_load_bmodel), each device with its own identity file in BMCRYPT_KEY_FILE.

The C side sees the regions one at a time: it opens E₁ with the identity, keeps that file's data
key, and opens the FlatBuffer (manifest and restore record stripped) and every weight envelope
with it. Every coeff on the device is compared with its check_code (`bmrt_trace`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MLP, QWEN
from plugin_loads import load_bmodel_with_identity, load_via_plugin_library, raw_callback_with_key

from bmcrypt import workflow
from bmcrypt.crypto import parse_header
from bmcrypt.errors import VendorRuntimeError
from bmcrypt.keys import generate_identity_file, generate_key_file, load_key_file
from bmcrypt.runtime import run_isolated

pytestmark = [pytest.mark.runtime, pytest.mark.slow]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A build key and two device identities; one more identity that is no recipient."""
    d = tmp_path_factory.mktemp("fleet")
    generate_key_file(d / "build.key")
    for name in ("box1", "box2", "stranger"):
        generate_identity_file(d / f"{name}.identity")
    return {p.stem: p for p in d.iterdir()}


@pytest.fixture(scope="module")
def encrypted(fleet: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("enc")
    recipients = [load_key_file(fleet["build"]), load_key_file(fleet["box1"]).recipient,
                  load_key_file(fleet["box2"]).recipient]
    return {f.name: workflow.encrypt_model(f, recipients, output=out / f.name).target
            for f in (MLP, QWEN)}


def test_the_file_is_format_2_with_three_stanzas(encrypted: dict[str, Path]) -> None:
    data = encrypted[MLP.name].read_bytes()
    header_size = int.from_bytes(data[4:8], "little")
    e1 = parse_header(data[8:header_size])
    assert e1.version == 2 and e1.kind == 1
    assert int.from_bytes(data[8 + 104 + 6:8 + 104 + 8], "little") == 3  # stanzas in use


@pytest.mark.parametrize("device", ["box1", "box2", "build"])
@pytest.mark.parametrize("fixture", [MLP, QWEN], ids=lambda p: p.stem)
def test_each_recipient_loads_through_the_vendors_decrypt_lib(fixture: Path, device: str,
                                                              fleet, encrypted) -> None:
    nets, errors = run_isolated(load_via_plugin_library, str(encrypted[fixture.name]),
                                str(fleet[device]))
    assert nets and errors == 0


def test_an_identity_that_is_no_recipient_fails_cleanly(fleet, encrypted) -> None:
    ok, error = run_isolated(raw_callback_with_key, str(encrypted[MLP.name]),
                             str(fleet["stranger"]))
    assert not ok and "wrong key" in error and "key id" in error
    with pytest.raises(VendorRuntimeError):
        run_isolated(load_via_plugin_library, str(encrypted[MLP.name]), str(fleet["stranger"]))


def test_the_raw_callback_loads_with_an_identity(fleet, encrypted) -> None:
    ok, error = run_isolated(raw_callback_with_key, str(encrypted[QWEN.name]), str(fleet["box2"]))
    assert ok, error


def test_bmcrypt_load_bmodel_with_register_identity_file(fleet, encrypted) -> None:
    ok, code, message, errors = run_isolated(load_bmodel_with_identity, str(encrypted[MLP.name]),
                                             str(fleet["box1"]))
    assert ok and code == 0 and errors == 0, message
    ok, code, message, _ = run_isolated(load_bmodel_with_identity, str(encrypted[MLP.name]),
                                        str(fleet["stranger"]))
    assert not ok and code == 6, message  # BMCRYPT_E_WRONG_KEY, before the runtime reads a byte
