# shellcheck shell=bash
# Sourced by the bounded libFuzzer runs in tests/proto/*-fuzz.sh (kept out
# of tests/proto so that tests/check.sh does not run it as a test), from the
# top of the tree.
#
# fuzz_main NAME SECONDS [MAX_LEN] <<'EOF' ... EOF
#   builds build/fuzz/NAME_fuzz (clang, `make`), seeds build/fuzz/corpus-NAME
#   with the Python on stdin (it fills a dict `seeds` of file name -> bytes;
#   os, struct and sys are imported), runs the fuzzer SECONDS seconds over it
#   on inputs of at most MAX_LEN bytes (default 16384) and prints PASS/FAIL
#   lines labelled NAME-fuzz.  Returns 1 on a failed build or seeding, a
#   crash or a sanitizer report (artifact in build/fuzz/).
#   FUZZ_RUNS=N (make fuzz-long): N executions instead, SECONDS ignored
#   (FUZZ_MAX_SECONDS, default a day, still bounds the run).

fuzz_main() {
    local name=$1 secs=$2 max_len=${3:-16384}
    local label=$name-fuzz fuzz=build/fuzz/${name}_fuzz corpus=build/fuzz/corpus-$name
    local blog=build/fuzz/$name-build.log log=build/fuzz/$name-fuzz.log

    if ! command -v clang >/dev/null; then
        echo "FAIL $label: clang not installed"
        return 1
    fi
    mkdir -p build/fuzz "$corpus"
    if ! make -s "$fuzz" >"$blog" 2>&1; then
        echo "FAIL $label: build (see $blog)"
        return 1
    fi
    echo "PASS $label: built $fuzz"

    if ! {
        printf 'import os, struct, sys\nout = sys.argv[1]\n'
        cat
        printf '%s\n' 'for name, data in seeds.items():' \
            '    with open(os.path.join(out, name), "wb") as f:' \
            '        f.write(data)'
    } | python3 - "$corpus"; then
        echo "FAIL $label: seeding the corpus $corpus"
        return 1
    fi

    local limit=(-max_total_time="$secs") what="${secs}s"
    if [ -n "${FUZZ_RUNS:-}" ]; then
        limit=(-runs="$FUZZ_RUNS" -max_total_time="${FUZZ_MAX_SECONDS:-86400}")
        what="asked $FUZZ_RUNS runs"
    fi
    local t0=$SECONDS
    "$fuzz" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" -print_final_stats=1 \
        -artifact_prefix=build/fuzz/ "$corpus" >"$log" 2>&1
    local rc=$? runs cov
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [ $rc = 0 ]; then
        echo "PASS $label: $what, ${runs:-?} inputs in $((SECONDS - t0)) s, ${cov:-cov ?}, no crash"
        return 0
    fi
    echo "FAIL $label: exit $rc (artifact in build/fuzz/, log $log)"
    grep -A20 'ERROR' "$log" | head -30
    return 1
}
