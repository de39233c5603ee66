#!/usr/bin/env bash
# Rebuilds every example plugin next to its source:
#   *.wat          with wat2wasm (Debian: apt-get install wabt)
#   go/*/          with the Go toolchain (GOOS=wasip1 GOARCH=wasm, c-shared)
#   as/            with AssemblyScript (npm install in as/, node_modules ignored)
# The built .wasm files are committed, so tests need none of these tools.
# Usage: testdata/plugins/build.sh [wat|go|as]...   (default: all)
set -euo pipefail
cd "$(dirname "$0")"

build_wat() {
	command -v wat2wasm >/dev/null || { echo "build.sh: wat2wasm not found (apt-get install wabt)" >&2; exit 1; }
	for src in *.wat; do
		wat2wasm "$src" -o "${src%.wat}.wasm"
		echo "built ${src%.wat}.wasm"
	done
}

build_go() {
	for dir in go/*/; do
		name=$(basename "$dir")
		(cd "$dir" && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags="-s -w" -o "$name.wasm" .)
		echo "built go/$name/$name.wasm"
	done
}

build_as() {
	command -v npm >/dev/null || { echo "build.sh: npm not found" >&2; exit 1; }
	(cd as && npm install --no-audit --no-fund --silent && npm run --silent build)
	echo "built as/weighted_as.wasm"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(wat go as)
for t in "${targets[@]}"; do
	case "$t" in
	wat) build_wat ;;
	go) build_go ;;
	as) build_as ;;
	*) echo "build.sh: unknown target $t (want wat, go or as)" >&2; exit 2 ;;
	esac
done
