#!/usr/bin/env bash
# The project's one test command (README.md and .ci/run both call it).
#   bash .ci/test.sh                  # all layers: lint js unit browser e2e
#   bash .ci/test.sh js unit          # only some layers
# Layers: lint    = ruff check + ruff format --check on the Python, ESLint on js/
#         js      = vitest on js/lib and the widget views (happy-dom)
#         unit    = pytest without the browser markers (Python logic, bundles, packaging)
#         browser = pytest -m browser (real Chromium on a harness page)
#         e2e     = pytest -m e2e (JupyterLab in Chromium)
# Every layer runs even if an earlier one fails; the exit status is non-zero if any layer failed
# or ran no tests. Pass counts and wall seconds per layer are printed at the end, with the
# comparisons against outside code (the authors', PIE-Bench's) that did not run for want of a
# checkout: a green run does not prove those equalities.
set -euo pipefail
cd "$(dirname "$0")/.."
# one torch thread per process: the browser layers run a kernel, a server and Chromium on 2 cores,
# and oversubscribed torch threads slow CPU sampling there by orders of magnitude
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

if [ -z "${PYTHON:-}" ]; then
  if [ -n "${VIRTUAL_ENV:-}" ]; then PYTHON=python
  elif [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python
  else PYTHON=python3
  fi
fi
layers=("$@")
[ ${#layers[@]} -eq 0 ] && layers=(lint js unit browser e2e)

# the unit layer runs its test files on one process per core, at most two (each test uses one torch
# thread; a file's tests stay on one process, so its fixtures are built once); UNIT_WORKERS=0 for one
cores=$("$PYTHON" -c 'import os; print(len(os.sched_getaffinity(0)))')
workers=${UNIT_WORKERS:-$(( cores < 2 ? 0 : 2 ))}
unit_workers=()
[ "$workers" -gt 0 ] && unit_workers=(-n "$workers" --dist loadfile)

out=tests/artifacts/results
mkdir -p "$out"
began=$(date +%s.%N)
summary=()
not_run=()
failed=0

junit_counts() {  # prints "P passed, F failed, S skipped" from a junit xml; exit 1 if 0 tests
  "$PYTHON" - "$1" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("no results"); sys.exit(1)
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
passed = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
print(f"{passed} passed, {n['failures'] + n['errors']} failed, {n['skipped']} skipped")
sys.exit(0 if n["tests"] else 1)
PY
}

not_run_comparisons() {  # prints one line per comparison a junit xml skipped for want of a checkout
  "$PYTHON" - "$1" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    sys.exit(0)
tests = {}  # reason -> test ids (tests/conftest.py's needs_checkout marker words the reason)
for case in root.iter("testcase"):
    skipped = case.find("skipped")
    reason = "" if skipped is None else skipped.get("message", "")
    if reason.startswith("not run: needs checkouts of"):
        where = case.get("classname", "").replace(".", "/")  # tests.test_x -> tests/test_x.py
        tests.setdefault(reason, []).append(f"{where}.py::{case.get('name', '')}")
for reason, ids in tests.items():
    print(f"{reason}: {', '.join(ids)}")
PY
}

stamp() { date +%s.%N; }
seconds_since() { "$PYTHON" -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.0f} s")' "$1"; }

run_pytest_layer() {  # name, marker expression, extra pytest arguments...
  local name=$1 expr=$2 rc=0 counts start line
  shift 2
  start=$(stamp)
  echo "== layer $name: pytest -m '$expr' $*"
  "$PYTHON" -m pytest -m "$expr" "$@" --junitxml="$out/$name.xml" -o junit_family=xunit2 || rc=$?
  if ! counts=$(junit_counts "$out/$name.xml") && [ "$rc" -eq 0 ]; then rc=5; fi
  if [ "$rc" -ne 0 ]; then failed=1; fi
  summary+=("$(printf '%-8s %-40s exit %-3s %8s' "$name" "$counts" "$rc" "$(seconds_since "$start")")")
  while IFS= read -r line; do
    [ -n "$line" ] && not_run+=("$line")
  done < <(not_run_comparisons "$out/$name.xml")
}

run_js_layer() {
  local rc=0 counts start
  start=$(stamp)
  echo "== layer js: vitest"
  if [ ! -d js/node_modules ]; then
    echo "js/node_modules is missing: run 'npm ci' in js/" >&2
    rc=1; counts="not run"
  else
    (cd js && npx vitest run --reporter=default --reporter=json --outputFile="../$out/js.json") || rc=$?
    counts=$(node -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
      process.exit(r.numTotalTests > 0 ? 0 : 1);' "$out/js.json") || { counts=${counts:-"no results"}; if [ "$rc" -eq 0 ]; then rc=5; fi; }
  fi
  if [ "$rc" -ne 0 ]; then failed=1; fi
  summary+=("$(printf '%-8s %-40s exit %-3s %8s' js "$counts" "$rc" "$(seconds_since "$start")")")
}

run_lint_layer() {
  local rc=0 checks=0 start
  start=$(stamp)
  echo "== layer lint: ruff check, ruff format --check, eslint"
  "$PYTHON" -m ruff check . || rc=1; checks=$((checks + 1))
  "$PYTHON" -m ruff format --check . || rc=1; checks=$((checks + 1))
  if [ -d js/node_modules ]; then
    (cd js && npm run --silent lint) || rc=1; checks=$((checks + 1))
  else
    echo "js/node_modules is missing: run 'npm ci' in js/" >&2; rc=1
  fi
  if [ "$rc" -ne 0 ]; then failed=1; fi
  summary+=("$(printf '%-8s %-40s exit %-3s %8s' lint "$checks checks run" "$rc" "$(seconds_since "$start")")")
}

for layer in "${layers[@]}"; do
  case $layer in
    lint) run_lint_layer ;;
    js) run_js_layer ;;
    unit) run_pytest_layer unit "not browser and not e2e" --durations=15 "${unit_workers[@]}" ;;
    browser) run_pytest_layer browser "browser" ;;
    e2e) run_pytest_layer e2e "e2e" ;;
    *) echo "unknown layer: $layer (use lint, js, unit, browser, e2e)" >&2; exit 2 ;;
  esac
done

echo
echo "== test layers (wall seconds last)"
printf '%s\n' "${summary[@]}"
printf '%-62s %8s\n' "all layers run" "$(seconds_since "$began")"
if [ ${#not_run[@]} -gt 0 ]; then
  echo "== comparisons with outside code that did NOT run (a pass above does not cover them)"
  printf '%s\n' "${not_run[@]}"
fi
if [ "$failed" -eq 0 ]; then echo "all layers passed"; else echo "SOME LAYERS FAILED"; fi
exit "$failed"
