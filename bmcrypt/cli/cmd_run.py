"""`bmcrypt run` and `bmcrypt plugin-path`: the runtime side of the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bmcrypt.cli import jsondoc, mode, options
from bmcrypt.cli import output as output_
from bmcrypt.errors import InputFileError

if TYPE_CHECKING:  # numpy and the vendor runtime load only when `run` runs
    import numpy as np


def run(
    model: Annotated[Path, typer.Argument(help="A plain or encrypted .bmodel.")],
    inputs: Annotated[Path, typer.Option(
        "--input", "-i", metavar="IN.npz",
        help="Input arrays, by input name (or in input order).")],
    out: Annotated[Path, typer.Option(
        "--output", "-o", metavar="OUT.npz", help="Where to save the outputs (by output name).")],
    net: Annotated[str | None, typer.Option(
        "--net", help="Net to run (default: the only one).")] = None,
    key: options.KeyRing = None,
    passphrase: options.UsePassphrase = False,
    licence: options.Licences = None,
    runtime: options.RuntimeDir = None,
    strategy: options.Strategy = "callback",
    json_: options.JsonOut = False,
    quiet: options.Quiet = False,
    verbose: options.Verbose = False,
) -> None:
    """Run one net of a model on inputs from an .npz file, like the vendor's model_runner."""
    import numpy as np

    from bmcrypt.loader import STRATEGIES, prepare
    from bmcrypt.runtime import Runtime
    from bmcrypt.runtime.serial import read_device_sn

    options.choice(strategy, STRATEGIES, "--strategy")
    keyring = options.licensed(options.secret_if_needed([model], key, passphrase), licence,
                               on_device=True)
    arrays = _read_npz(inputs)
    # Verify (or decrypt) before the runtime opens: its threads compete for the CPUs. A
    # device-bound license asks the device for its serial number first (a brief open).
    with prepare(model, keyring, strategy=strategy,  # type: ignore[arg-type]
                 device_sn=lambda: read_device_sn(runtime)) as ready, Runtime(runtime) as rt:
        loaded = ready.load_into(rt)
        name = _pick_net(loaded.nets, net)
        info = rt.net_info(name)
        names = [t.name for t in info.inputs]
        feed = ({n: arrays[n] for n in names} if set(names) <= set(arrays)
                else list(arrays.values()))
        results = rt.run(name, feed)
    np.savez(out, **{t.name: r for t, r in zip(info.outputs, results, strict=True)})
    if mode.current.json:
        jsondoc.emit(True, model=str(model), net=name, strategy=loaded.strategy,
                     outputs=[{"name": t.name, "shape": list(r.shape), "dtype": str(r.dtype)}
                              for t, r in zip(info.outputs, results, strict=True)],
                     saved_to=str(out))
        return
    if mode.current.quiet:
        return
    output_.note(f"ran net {name!r} ({loaded.strategy}): {output_.plural(len(results), 'output')} "
                 f"saved to {out}")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    import numpy as np

    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except (ValueError, OSError) as exc:
        raise InputFileError(f"{path} is not a readable .npz file ({exc})",
                             hint="save inputs with numpy.savez(PATH, name=array, …)") from None


def _pick_net(nets: tuple[str, ...], wanted: str | None) -> str:
    if wanted is not None:
        if wanted not in nets:
            raise InputFileError(f"no net named {wanted!r} in this model",
                                 hint=f"nets: {', '.join(nets)}")
        return wanted
    if len(nets) != 1:
        raise InputFileError(f"the model has {len(nets)} nets; say which one to run",
                             hint=f"--net NAME, one of: {', '.join(nets)}")
    return nets[0]


def plugin_path_cmd(
    json_: options.JsonOut = False,
    quiet: options.Quiet = False,
    verbose: options.Verbose = False,
) -> None:
    """Print the absolute path of libbmcrypt.so (for bmrt_load_bmodel_with_decrypt_lib, -lib)."""
    from bmcrypt.plugin import plugin_path

    if mode.current.json:
        jsondoc.emit(True, path=str(plugin_path()))
        return
    output_.data(str(plugin_path()))
