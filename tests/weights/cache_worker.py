"""One process loading registered weights through the cache (test_cache.py).

    python -m tests.weights.cache_worker URL HASH OUT.npy

Registers TinyNet "race_in1k" -> URL (HASH may be "-": none published),
builds the tiny network with those weights and saves its output on a fixed
input to OUT.npy; prints "downloaded" if this process called get_file. The
download is slowed down so that a second process arrives while the first
holds the lock.
"""

import sys
import time

import keras
import numpy as np

from kerasnets.weights import PretrainedCfg, config
from tests.weights.test_loading import tiny_builder


def main(url, file_hash, out):
    config._CFGS["TinyNet"] = [PretrainedCfg(
        "TinyNet", "race_in1k", url=url, format="safetensors",
        file_hash=None if file_hash == "-" else file_hash)]
    real_get_file = keras.utils.get_file
    calls = []

    def slow_get_file(*args, **kwargs):
        calls.append(args)
        path = real_get_file(*args, **kwargs)
        time.sleep(2.0)
        return path

    keras.utils.get_file = slow_get_file
    model = tiny_builder(weights="race_in1k", classifier_activation=None)
    x = np.linspace(0.0, 1.0, 32 * 32 * 3, dtype="float32").reshape(1, 32, 32, 3)
    np.save(out, keras.ops.convert_to_numpy(model(x)))
    print("downloaded" if calls else "cached", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
