#!/bin/sh
# `plm tokenize` end to end: ids of known strings (spec/tokenizer.md, tiktoken), --no-special, --decode, a
# byte-exact round trip of the edge-case inputs (CR, NUL, VT, ...), a model directory, and the errors (exit 1,
# the problem on stderr). Usage: plm_tokenize_test.sh PLM_BINARY TOKENIZER_DATA_DIR
set -u
plm=$1
data=$2
model=$data/llama3_tokenizer.model
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then
    echo "ok   $1"
  else
    echo "FAIL $1: expected '$2', got '$3'"
    failures=$((failures + 1))
  fi
}

# check_error NAME EXPECTED_STDERR_SUBSTRING COMMAND...: exit status 1 and the message on stderr.
check_error() {
  name=$1
  expected=$2
  shift 2
  stderr=$("$@" 2>&1 >/dev/null)
  check "$name: exit status" 1 $?
  case $stderr in
    *"$expected"*) echo "ok   $name: message" ;;
    *) echo "FAIL $name: stderr '$stderr' lacks '$expected'"; failures=$((failures + 1)) ;;
  esac
}

check "encode" "9906 1917" "$(printf 'Hello world' | "$plm" tokenize --tokenizer "$model")"
check "special tokens" "15339 220 128001" "$(printf 'hello <|end_of_text|>' | "$plm" tokenize --tokenizer "$model")"
check "--no-special" "15339 83739 408 3659 4424 91 29" \
  "$(printf 'hello <|end_of_text|>' | "$plm" tokenize --tokenizer "$model" --no-special)"
check "empty input" "" "$(printf '' | "$plm" tokenize --tokenizer "$model")"
check "--decode" "Hello world<|eot_id|>" "$(echo ' 9906  1917
128009' | "$plm" tokenize --tokenizer "$model" --decode)"

"$plm" tokenize --tokenizer "$model" < "$data/llama3_edge_cases.inp" > "$tmp/ids" &&
  "$plm" tokenize --tokenizer "$model" --decode < "$tmp/ids" > "$tmp/decoded"
cmp -s "$tmp/decoded" "$data/llama3_edge_cases.inp"
check "round trip of llama3_edge_cases.inp" 0 $?

mkdir "$tmp/model_dir"
ln -s "$model" "$tmp/model_dir/tokenizer.model"
check "model directory" "9906 1917" "$(printf 'Hello world' | "$plm" tokenize --tokenizer "$tmp/model_dir")"

check_error "missing tokenizer" "$tmp/missing.model" "$plm" tokenize --tokenizer "$tmp/missing.model"
printf 'IQ== 0\nnot-base64! 1\n' > "$tmp/bad.model"
check_error "bad tokenizer file" "bad.model:2: bad base64 token" "$plm" tokenize --tokenizer "$tmp/bad.model"
echo '9906 128256' > "$tmp/unknown_id"
check_error "unknown id" "token id 128256 at position 1 is not in the vocabulary" \
  sh -c '"$0" tokenize --tokenizer "$1" --decode < "$2"' "$plm" "$model" "$tmp/unknown_id"
echo '9906 abc' > "$tmp/not_an_id"
check_error "not an id" "'abc' (word 2 of stdin) is not a token id" \
  sh -c '"$0" tokenize --tokenizer "$1" --decode < "$2"' "$plm" "$model" "$tmp/not_an_id"

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
