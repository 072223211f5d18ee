"""The smoke test: the loaded model must reproduce the package's test vectors before it serves."""

from __future__ import annotations

import numpy as np

from edge_agent.backends import Backend
from edgefleet.errors import AgentError
from edgefleet.manifest import Artifact, Manifest
from edgefleet.tensors import decode_tensor

__all__ = ["smoke_test"]


def smoke_test(backend: Backend, manifest: Manifest, artifact: Artifact) -> float:
    """Run the test vectors; returns the largest difference, raises AgentError when it is over the tolerance."""
    vectors = manifest.test_vectors
    if vectors is None or artifact.path not in vectors.expected:
        return 0.0
    expected = vectors.expected[artifact.path]
    inputs = {name: decode_tensor(t).astype(np.float32) for name, t in vectors.inputs.items()}
    outputs = backend.run(inputs)
    missing = sorted(set(expected.outputs) - set(outputs))
    if missing:
        raise AgentError(
            f"{artifact.path} has no output named {', '.join(missing)}, which its test vectors expect",
            hint="the package's manifest and model disagree: rebuild the package",
        )
    worst = 0.0
    for name, tensor in expected.outputs.items():
        want = decode_tensor(tensor).astype(np.float32)
        if outputs[name].shape != want.shape:
            raise AgentError(
                f"{artifact.path} output {name} has shape {outputs[name].shape}, its test vectors {want.shape}",
                hint="the package's manifest and model disagree: rebuild the package",
            )
        worst = max(worst, float(np.abs(outputs[name] - want).max(initial=0.0)))
    if worst > expected.atol:
        raise AgentError(
            f"{artifact.path} misses its test vectors by {worst:.3g} (tolerance {expected.atol:.3g})",
            hint="this runtime or CPU computes the model differently: report it, and run another artifact",
        )
    return worst
