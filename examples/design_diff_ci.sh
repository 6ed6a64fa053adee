#!/usr/bin/env bash
# Check a design change in CI: what changed between two versions of a spec, and what it costs.
#
#   examples/design_diff_ci.sh OLD_SPEC NEW_SPEC [MAX_EXTRA_TRAINABLE]
#
# Prints the `vlsurgery diff --markdown` table (and appends it to the job summary on GitHub
# Actions, where $GITHUB_STEP_SUMMARY names a file), then fails when the new design trains more
# than MAX_EXTRA_TRAINABLE parameters beyond the old one (default: no limit).  Nothing is
# downloaded and no model is built: diff works on the specs and the backbone's sizes.
# examples/ci/design-diff.yml runs it on every pull request that touches a spec.
set -euo pipefail

old="${1:?usage: design_diff_ci.sh OLD_SPEC NEW_SPEC [MAX_EXTRA_TRAINABLE]}"
new="${2:?usage: design_diff_ci.sh OLD_SPEC NEW_SPEC [MAX_EXTRA_TRAINABLE]}"
budget="${3:-}"
vls="${VLSURGERY:-vlsurgery}"   # the command; a test sets it to "python -m vlsurgery.cli.main"
python="${PYTHON:-python3}"     # reads the JSON form (many runners have no `python`)

# diff exits 0 when the designs are the same, 1 when they differ, 2 on trouble (a broken spec):
# only 2 is a failure here.
status=0
table="$($vls diff --markdown "$old" "$new")" || status=$?
if [ "$status" -ge 2 ]; then
    echo "vlsurgery diff could not compare the designs (exit $status)" >&2
    exit "$status"
fi
echo "$table"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    printf '%s\n\n' "$table" >> "$GITHUB_STEP_SUMMARY"
fi
[ "$status" -eq 0 ] && { echo "the design did not change"; exit 0; }

if [ -n "$budget" ]; then
    # the JSON form has the numbers (schema: docs/diff.md)
    read_delta='import json, sys; print(json.load(sys.stdin)["trainable_delta"])'
    # diff --json exits 1 because the designs differ; only what it printed matters here, and a
    # missing or broken number must fail the check, never pass it
    delta="$( { $vls diff --json "$old" "$new" || true; } | "$python" -c "$read_delta")" || delta=""
    if ! [[ "$delta" =~ ^-?[0-9]+$ ]]; then
        echo "could not read the change in trainable parameters from \`vlsurgery diff --json\`" \
             "(got '$delta')" >&2
        exit 2
    fi
    if [ "$delta" -gt "$budget" ]; then
        echo "the change adds $delta trainable parameters: more than the budget of $budget" >&2
        exit 1
    fi
    echo "the change adds $delta trainable parameters (budget $budget)"
fi
