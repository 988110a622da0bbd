# Sourced by tools/check-*: reading the per-file verdicts of the batch checkers
# (check-many.mjs --out DIR, speedscope-check-many.mjs --out DIR), which run once per call
# over all the files. Needs report() from the sourcing script.

# result DIR I NAME LABEL FILE LOG: reports DIR/I.NAME's verdict for FILE under LABEL; a missing
# verdict (the batch process died before FILE) is a failure that shows the batch's output LOG.
result() {
  local dir=$1 i=$2 name=$3 label=$4 file=$5 log=$6 verdict
  if [[ ! -f "$dir/$i.$name" ]]; then
    report FAIL "$label" "$file" "the batch checker left no verdict for this file; its output:"$'\n'"$(tail -n 20 "$log" 2>/dev/null)"
    return 0
  fi
  verdict=$(head -n 1 "$dir/$i.$name")
  if [[ $verdict == OK ]]; then
    report OK "$label" "$file" "$(tail -n +2 "$dir/$i.$name")"
  else
    report FAIL "$label" "$file" "$(tail -n +2 "$dir/$i.$name")"
  fi
}
