#!/bin/sh
# Seeds the fuzz corpora (fuzz/corpus/<target>/seed-*) from the repository's
# real inputs. Run from the repository root; re-running rewrites the seeds
# and leaves the inputs the fuzzer found alone.
set -eu
c=fuzz/corpus
mkdir -p $c/scenario $c/protocol $c/triage $c/run_json

# Every scenario of the repository.
find scenarios -name '*.yaml' | while read -r f; do
    cp "$f" "$c/scenario/seed-$(echo "$f" | tr / _)"
done

# Real console logs (a hang, reflink runs, the stored CI runs).
logs=$(find docs/survey runner/tests/data -name console.log -o -name '*.console.log' | sort)
n=0
for f in $logs; do
    n=$((n + 1))
    cp "$f" "$c/triage/seed-console-$n.log"
done
# One header of each report group, in a report of the usual shape.
grep -oE '(^|[^_[:alnum:]])(group|weak)\("[^"]*"' runner/src/triage/patterns.rs | sed -E 's/^.*(group|weak)\("//; s/"$//' | sort -u | while read -r h; do
    name=$(echo "$h" | tr -c 'A-Za-z0-9\n' _)
    cat > "$c/triage/seed-header-$name.log" <<LOG
[    1.000000][  T100] ------------[ cut here ]------------
[    1.000000][  T100] $h CPU: 1 PID: 100 at mm/gup.c:224 try_grab_page+0x1f/0x84
[    1.000000][  T100] RIP: 0010:try_grab_page+0x1f/0x84
[    1.000000][  T100] Call Trace:
[    1.000000][  T100]  <TASK>
[    1.000000][  T100]  follow_page_pte+0x2b1/0x3f0
[    1.000000][  T100]  __get_user_pages+0x1a9/0x2c0
[    1.000000][  T100]  </TASK>
[    1.000000][  T100] ---[ end trace 0000000000000000 ]---
LOG
done

# Protocol: the agent's lines of the real logs, one message kind a file, and a
# whole console of a hang (a line split by a printk is reassembled there), all
# bound to the boot nonce the target reads them under (checks::NONCE; the
# stored logs predate nonces, or have their own).
nonce=5f0c8a2e9b1d7c43
grep -h 'KREGRESS> ' $logs | sed 's/^.*KREGRESS> [^{]*//' | sort -u -t'"' -k4,4 | while read -r json; do
    kind=$(echo "$json" | sed 's/^{"type":"\([a-z_]*\)".*/\1/')
    printf 'KREGRESS> %s %s\n' "$nonce" "$json" > "$c/protocol/seed-$kind"
done
sed "s/^/KREGRESS> $nonce /" docs/survey/*.agent.jsonl > "$c/protocol/seed-agent-jsonl"
sed "s/KREGRESS> [0-9a-f]* \\{0,1\\}{/KREGRESS> $nonce {/" docs/survey/deb6.1-memmap-xfs-pte-truncate-during-dio.console.log > "$c/protocol/seed-console-hang.log"

# Every stored run.json.
n=0
for f in $(find runner/tests/data -name run.json | sort); do
    n=$((n + 1))
    cp "$f" "$c/run_json/seed-$n.json"
done
