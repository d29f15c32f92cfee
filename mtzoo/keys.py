"""Every data field name used in mtzoo, in one place.

Graph-level tensors are batched by PyTorch Geometric: node fields are concatenated over
frames (``N`` = total atoms in the batch), edge fields over edges (``E``), graph fields
over frames (``B``).  Modules never spell these strings inline; they import them here.

Conventions
-----------
* ``EDGE_INDEX[0]`` is the neighbour (source, ``j``), ``EDGE_INDEX[1]`` the centre
  (target, ``i``), as in PyTorch Geometric's message flow ``j -> i``.
* The edge vector is ``r_ij = pos[j] - pos[i] + CELL_SHIFT @ cell`` (Angstrom).
* Energies in eV, forces eV/A, virial eV (DeePMD sign: ``virial = -dE/d(strain)``),
  stress eV/A^3 (ASE sign: ``stress = -virial / volume``).
"""

# --- node fields (shape [N, ...]) -------------------------------------------------------
POSITIONS = "pos"  # [N, 3] float, Angstrom
ATOM_TYPE = "atom_type"  # [N] long, index into the model's type_map
BATCH = "batch"  # [N] long, frame index of each atom (PyG)

# --- edge fields (shape [E, ...]) -------------------------------------------------------
EDGE_INDEX = "edge_index"  # [2, E] long: row 0 neighbour j, row 1 centre i
CELL_SHIFT = "cell_shift"  # [E, 3] float (integer valued): periodic image of j

# --- graph fields (shape [B, ...]) ------------------------------------------------------
CELL = "cell"  # [B, 3, 3] float, rows are lattice vectors (zeros when not periodic)
PBC = "pbc"  # [B, 3] bool
NUM_ATOMS = "natoms"  # [B] long
FRAME_ID = "frame_id"  # [B] long, index of the frame in its system
SYSTEM_ID = "system_id"  # [B] long, index of the system in its data set

# --- labels and model outputs ----------------------------------------------------------
ENERGY = "energy"  # [B] float, eV (total energy of the frame)
ATOM_ENERGY = "atom_energy"  # [N] float, eV
FORCES = "force"  # [N, 3] float, eV/A
VIRIAL = "virial"  # [B, 3, 3] float, eV
STRESS = "stress"  # [B, 3, 3] float, eV/A^3 (periodic frames only)

# tensor properties (global = sum of the atomic values over the frame)
DIPOLE = "dipole"  # [B, 3]
ATOM_DIPOLE = "atomic_dipole"  # [N, 3]
POLARIZABILITY = "polarizability"  # [B, 3, 3]
ATOM_POLARIZABILITY = "atomic_polarizability"  # [N, 3, 3]

# --- label masks: 1.0 where the frame carries the label, 0.0 where not ----------------------
def has(key: str) -> str:
    """Name of the [B] float mask telling which frames carry label ``key``."""
    return f"has_{key}"


LABEL_KEYS = (ENERGY, FORCES, VIRIAL)
TENSOR_LABEL_KEYS = (DIPOLE, ATOM_DIPOLE, POLARIZABILITY, ATOM_POLARIZABILITY)
PER_ATOM_LABELS = (FORCES, ATOM_ENERGY, ATOM_DIPOLE, ATOM_POLARIZABILITY)

#: Shape of ONE frame (graph-level keys) or ONE atom (per-atom keys) of each label and output.
#: A batch of ``B`` frames with ``N`` atoms holds graph-level values as ``[B, *shape]`` and
#: per-atom values as ``[N, *shape]``; masks ``has_<key>`` are ``[B]``.  The energy is a scalar
#: per frame, so a batch's energies are ``[B]`` (never ``[B, 1]``).
ITEM_SHAPES = {ENERGY: (), VIRIAL: (3, 3), STRESS: (3, 3), DIPOLE: (3,), POLARIZABILITY: (3, 3),
               FORCES: (3,), ATOM_ENERGY: (), ATOM_DIPOLE: (3,), ATOM_POLARIZABILITY: (3, 3)}


def frame_shape(key: str, natoms: int) -> tuple[int, ...]:
    """Shape of one frame's value of label ``key``: ``ITEM_SHAPES[key]``, led by ``natoms`` for per-atom keys."""
    return ((natoms,) if key in PER_ATOM_LABELS else ()) + ITEM_SHAPES[key]


def batch_shape(key: str, nframes: int, natoms: int) -> tuple[int, ...]:
    """Shape of label or output ``key`` in a batch of ``nframes`` frames with ``natoms`` atoms in all."""
    return ((natoms,) if key in PER_ATOM_LABELS else (nframes,)) + ITEM_SHAPES[key]

# --- descriptor outputs (dict keys returned by every descriptor) ------------------------
DESCRIPTOR = "descriptor"  # [N, dim_out] invariant per-atom features
ROT_MAT = "rot_mat"  # [N, M, 3] equivariant per-atom axis vectors (se_* family)
EQUIVARIANT = "equivariant"  # [N, irreps_out.dim] e3nn irreps features (descriptors with irreps_out)
