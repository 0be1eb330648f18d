"""An experiment from its config: the dataset, network and method it names, trained by the loop.

This is where the flow config -> data -> network -> method -> loop -> results is assembled for
`stochtp run` and `stochtp sweep`: `build(config)` makes the parts, `run(config)` trains them
(`stochtp.train.train_run`) into a results file.
"""
from pathlib import Path

import numpy as np

from . import data, methods, results, train
from .errors import ConfigError
from .network import Network


def build_network(config):
    return Network.from_spec(config.network, seed=config.seed, init=config.init, dtype=np.dtype(config.dtype), input_noise=config.input_noise)


def build_method(config):
    options = dict(config.method)
    return methods.get(options.pop("name"), **options)


def build_model(config):
    """The network of `config` and its method bound to it (no data): ConfigError where they cannot go together."""
    net, method = build_network(config), build_method(config)
    method.bind(net, config.seed)
    return net, method


def build(config, data_dir=None, source=None):
    """The dataset, network and bound method of `config`; their ConfigErrors name `source` when given."""
    try:
        dataset = data.load(config.dataset, data_dir, **config.data)
        net, method = build_model(config)
        train.check_fit(config, dataset, net, method.task)
    except ConfigError as error:
        if source is None:
            raise
        raise ConfigError(f"{source}: {error}") from None
    return dataset, net, method


def default_out(config):
    return Path("results") / f"{config.name}.h5"


def run(config, out=None, data_dir=None, threads=None, resume=False, quiet=True, source=None, callbacks=()):
    """Train as `config` says, append the run to `out` (default results/<name>.h5), return a RunSummary.

    `source` (the config file or preset) is named in the ConfigErrors met while the dataset,
    network and method are built. Raises TrainingFailed (status `failed`) on non-finite values
    and KeyboardInterrupt (status `interrupted`) on SIGINT/SIGTERM, after recording them in the file.
    """
    train.check_threads(threads)
    if out is not None:
        results.check_results_path(out)  # before Path drops a trailing slash
    out = Path(out) if out is not None else default_out(config)
    if resume and not out.exists():  # checked before a Writer makes the file
        raise ConfigError(f"--resume: no interrupted run of this config in {out} (no such file)")
    dataset, net, method = build(config, data_dir, source)
    summary, _ = train.train_run(config, dataset, net, method, out=out, callbacks=callbacks, threads=threads, resume=resume, quiet=quiet)
    return summary
