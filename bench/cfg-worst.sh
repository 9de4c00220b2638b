#!/bin/sh
# Worst-case configuration files within cfg.c's limits (1 MiB, 64 levels,
# 100,000 nodes, 100,000 values after alias expansion): prints the CPU time
# vtpmd -t spends on each, next to a minimal file's. Usage: cfg-worst.sh [VTPMD]
set -eu
VTPMD=${1:-./vtpmd}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
python3 - "$T" <<'PY'
import sys
d = sys.argv[1]
hdr = 'policy:\n  rules:\n    - name: r\n      match:\n        metadata:\n'
def put(name, text):
    assert len(text) <= 1024 * 1024, name
    open(d + '/' + name + '.yaml', 'w').write(text)
put('minimal', 'host: h\n')
put('keys', hdr + ''.join('          k%d: x\n' % i for i in range(49000)))
put('longlist', hdr.replace('metadata:\n', 'host: [') + ','.join(['x'] * 99000) + ']\n')
unit = '[' * 58 + ']' * 58
put('deep', hdr + ''.join('          k%d: %s\n' % (i, unit) for i in range(1600)))
put('laughs', hdr + '          k0: &a [' + ','.join(['x'] * 30000) + ']\n' +
    ''.join('          k%d: *a\n' % i for i in range(1, 30000)))
put('rules', 'policy:\n  rules:\n    - &r {name: r, match: {metadata: {' +
    ','.join('k%d: x' % j for j in range(3000)) + '}}}\n' + '    - *r\n' * 90000)
PY
for f in minimal keys longlist deep laughs rules; do
    /usr/bin/time -f "$f: %U s user %S s sys %M KiB max RSS $(wc -c <"$T/$f.yaml") bytes" \
        "$VTPMD" -t -c "$T/$f.yaml" 2>&1 >/dev/null | tail -1
done
