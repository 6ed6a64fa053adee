"""PET methods: the modules vlsurgery inserts, their hyperparameters, and their parameter counts.

Architecture
------------
``params``      frozen hyperparameter dataclasses (field names = DSL keywords) and their schema.
``registry``    one :class:`MethodEntry` per DSL method name: ``finalize`` (site-derived values and
                problems), ``count`` (parameters, without building), ``shared`` (tensors counted once
                per model), ``build`` (the site module), and the declared needs of its modules:
                ``context`` (token embedding, shared store), ``needs_mask(hp)``, ``trains(name)``.
                The planner uses the first three; the compiler calls ``build`` with what the entry
                declares, and never names a method.
``finalize``    each method's ``finalize``: site-derived values, older init spellings folded, problems.
``initializers`` the ``init_<part>`` initialisers (default, zero, backbone, normal(s), uniform(a)) and
                :class:`~vlsurgery.methods.initializers.BackboneInit`, read from a model's config.
``vlpet``       :class:`VLPET`, the site module of every gateable method: H' = s * G (.) (H + dH).
``bottleneck``  dH = Up(act(Down(.))), sequential (reads H) or parallel (reads X), multi-head Down.
``gates``       G at the granularities none / scalar / token / vector / matrix.
``compacter``   PHM layers W = sum_i A_i (x) B_i and the Compacter bottleneck; shared rule A.
``lora``        dH = (alpha/r) B A x, with :func:`merge_lora` / :func:`unmerge_lora`.
``ia3``, ``prompt``, ``projector`` (the VL-BART/VL-T5 visual projector and a weight-only RMSNorm),
``activations`` (``gelu_new`` = tanh-approximated GELU, the default).

Calling conventions: sublayer and projection sites ``module(x, h, mask=None) -> h_new`` with x
(B, N, d_in) the site's input X, h (B, N, d_out) its output H, mask (B, N) 1/True for real tokens;
prompt sites ``module(batch_size) -> (B, length, d)``; the projector
``projector(feats (B,R,feat_dim), boxes (B,R,4), image_ids (B,R) | None) -> (B, R, d)``.
``module.make_identity_()`` makes a site module return h exactly (raises where impossible:
``scale != 1``, prompts, the projector).

The maths (d_src = d_out for ``placement=sequential``, d_in for ``parallel``; r = d_src // reduction
when unset; g = gate_r, default r)
---------------------------------------------------------------------------------------------------
=========  ===========================================  ==============================================
method     h_new                                        trainable parameters
=========  ===========================================  ==============================================
adapter    s * G (.) (H + Up(act(Down(src))))           d_src*r + r + r*d_out + d_out + gate
lite       H + Up(act(Down(X)))                         d_in*r + r + r*d_out + d_out
compacter  s * G (.) (H + PHM_up(act(PHM_down(src))))   PHM(d_src->r) + PHM(r->d_out) + gate
                                                        (+ 2 n^3 unless shared; shared: n^3 per model)
lora       s * G (.) (H + (alpha/r) B A X)              r (d_in + d_out) + gate
gate       s * G (.) H                                  gate
ia3        l (.) H                                      d_out
prompt     [P ; stack input]                            length * d
none       H                                            0
=========  ===========================================  ==============================================

PHM(a->b) = n (b/n)(a/n) + b (full B_i) or k (a + b) + b (phm_rank = k).  Gates: none 0,
scalar d_in + d_out + 1, token d + 1, vector d_out, matrix d_in*g + g + g*d_out + d_out.

What builds no module: ``bitfit`` and layer-norm tuning are ``train`` declarations
(``train *.bias``, ``train encoder.layernorm``): they make existing base parameters trainable and are
handled by the planner; full fine-tuning is ``train all``.  The projector is declared with
``projector`` and counted with :func:`count_projector`.
"""


from vlsurgery.lazy import lazy_attributes
from vlsurgery.methods.registry import (REGISTRY, MethodEntry, SiteDims, UnknownMethodError, build_projector,
                                        count_projector, get)

# The nn.Modules load on first use (``vlsurgery.methods.VLPET``): the registry and the count
# formulas above work without torch, which keeps ``vlsurgery count`` fast.
_LAZY = {
    "Bottleneck": "bottleneck", "PHMBottleneck": "compacter", "PHMLinear": "compacter", "phm_rule_key": "counts",
    "MatrixGate": "gates", "ScalarGate": "gates", "TokenGate": "gates", "VectorGate": "gates", "make_gate": "gates",
    "IA3": "ia3", "LoRA": "lora", "merge_lora": "lora", "unmerge_lora": "lora", "RMSNorm": "projector",
    "VisualProjector": "projector", "projector_count": "counts", "Prompt": "prompt", "VLPET": "vlpet",
    "NoOp": "vlpet", "BackboneInit": "initializers", "backbone_init": "initializers",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "BackboneInit", "Bottleneck", "IA3", "LoRA", "MatrixGate", "MethodEntry", "NoOp", "PHMBottleneck", "PHMLinear",
    "Prompt", "REGISTRY", "RMSNorm", "ScalarGate", "SiteDims", "TokenGate", "UnknownMethodError", "VLPET",
    "VectorGate", "VisualProjector", "backbone_init", "build_projector", "count_projector", "get", "make_gate",
    "merge_lora", "phm_rule_key", "projector_count", "unmerge_lora",
]
