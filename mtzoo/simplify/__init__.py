"""DP-GEN's "simplify" loop in mtzoo: model deviation of a committee, selective relabelling.

* :mod:`mtzoo.simplify.model_devi`: DeePMD-kit's model deviation (``mtzoo model-devi``);
* :mod:`mtzoo.simplify.loop`: the train / model-deviation / label loop (``mtzoo simplify``);
* :mod:`mtzoo.simplify.config`: the simplify.json keys; :mod:`mtzoo.simplify.labelers`: the
  labelling ASE calculators.

docs/simplify.md describes the loop and the Ag-Au example.
"""

from mtzoo.simplify.config import SimplifyConfig, parse_simplify
from mtzoo.simplify.loop import Simplify, SimplifyError, format_summary, simplify
from mtzoo.simplify.model_devi import model_devi, write_model_devi_out

__all__ = ["Simplify", "SimplifyConfig", "SimplifyError", "format_summary", "model_devi", "parse_simplify", "simplify",
           "write_model_devi_out"]
