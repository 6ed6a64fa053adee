"""``vlsurgery demo``: the whole pipeline on a built-in default, offline, in seconds.

Takes the demo design (``specs/examples/demo-t5.vls``: VL-PET-large in miniature on ``tiny-t5``, a
random 2+2-block T5), counts it, compiles it, and trains only what the spec makes trainable on a
synthetic visual question answering task: each example shows four image regions, one of which
carries one of four visual concepts; the answer is that concept's token.  The backbone is random
and frozen, so everything the model learns goes through the visual projector, the encoder's gated
adapters and layer norms, and the decoder's cross-attention value adapters.  It reports the loss
and the answer accuracy of ``generate()`` before and after training (chance: 25 %).
"""

from __future__ import annotations

import sys
import time

CONCEPTS = 4
REGIONS = 4


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="count, compile and train the built-in demo design (offline)",
                              description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--spec", default=None, help="a design for tiny-bart/tiny-t5: a file or a library name such as "
                   "lib:examples/demo.vls (default: lib:examples/demo-t5.vls)")
    p.add_argument("--backbone", default=None, help="override the spec's backbone (a tiny preset is advised)")
    p.add_argument("--steps", type=int, default=150, help="optimizer steps (default 150)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def make_task(feat_dim: int, vocab: int, seed: int):
    """A synthetic VQA task: (vis_feats, vis_boxes, input_ids, answers) sampler."""
    import torch

    g = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(CONCEPTS, feat_dim, generator=g) * 3
    question = torch.randint(4, vocab - REGIONS - CONCEPTS, (6,), generator=g)
    answer_tokens = torch.arange(4, 4 + CONCEPTS) + 10

    def sample(n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        concept = torch.randint(0, CONCEPTS, (n,), generator=g)
        where = torch.randint(0, REGIONS, (n,), generator=g)
        feats = torch.randn(n, REGIONS, feat_dim, generator=g)
        feats[torch.arange(n), where] += prototypes[concept]
        x1y1 = torch.rand(n, REGIONS, 2, generator=g) * 0.5
        boxes = torch.cat([x1y1[..., :1], x1y1[..., :1] + 0.5, x1y1[..., 1:], x1y1[..., 1:] + 0.5], dim=-1)
        return feats, boxes, question.expand(n, -1).clone(), answer_tokens[concept]

    return sample


def run(args) -> int:
    import torch

    from vlsurgery.compiler.compile import compile
    from vlsurgery.planning import count
    from vlsurgery.profiles.backbone import load_model
    from vlsurgery.cli.report import render_count
    from vlsurgery.spec.loader import spec_path

    torch.set_num_threads(1)  # tiny matrices: threads only add overhead
    design = str(spec_path(args.spec or "lib:examples/demo-t5.vls")[0])
    title = args.spec or "lib:examples/demo-t5.vls (shipped with vlsurgery)"
    predicted = count(design, args.backbone)
    print(render_count(predicted, title))
    if predicted.plan.projector is None:
        print("vlsurgery demo: the design needs a `projector` (the demo task is visual)")
        return 2
    model, _ = load_model(predicted.plan.backbone, seed=args.seed)
    compile(design, model, seed=args.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if sum(p.numel() for p in trainable) != predicted.trainable:  # never expected: the count is exact
        print(f"vlsurgery demo: error: compiled {sum(p.numel() for p in trainable):,} trainable parameters, "
              f"but `count` predicted {predicted.trainable:,}", file=sys.stderr)
        return 1
    print(f"compiled onto a random {predicted.plan.backbone_name}: {sum(p.numel() for p in trainable):,} "
          "trainable parameters, as counted\n")

    sample = make_task(predicted.plan.projector.feat_dim, model.config.vocab_size, args.seed)
    test = sample(256, seed=10_000)
    print(f"before training: answer accuracy {accuracy(model, test):.0%} (chance {1 / CONCEPTS:.0%})")
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    start = time.perf_counter()
    model.train()
    for step in range(1, args.steps + 1):
        feats, boxes, ids, answers = sample(32, seed=step)
        loss = model(input_ids=ids, labels=targets(model, answers), vis_feats=feats, vis_boxes=boxes).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 1 or step % 25 == 0:
            print(f"  step {step:>4}  loss {loss.item():.3f}")
    model.eval()
    seconds = time.perf_counter() - start
    print(f"after {args.steps} steps ({seconds:.1f} s): answer accuracy {accuracy(model, test):.0%}")
    return 0


def targets(model, answers):
    """The label sequence: the answer token (after BOS where the model forces one, as BART does)."""
    import torch

    bos = model.generation_config.forced_bos_token_id
    columns = ([torch.full_like(answers, bos)] if bos is not None else []) + [answers]
    return torch.stack(columns, dim=1)


def accuracy(model, batch) -> float:
    """Share of examples whose generated answer token is the right one."""
    import torch

    feats, boxes, ids, answers = batch
    length = targets(model, answers).shape[1]
    with torch.no_grad():
        out = model.generate(input_ids=ids, vis_feats=feats, vis_boxes=boxes, max_new_tokens=length,
                             min_new_tokens=length, do_sample=False)
    return (out[:, -1] == answers).float().mean().item()
