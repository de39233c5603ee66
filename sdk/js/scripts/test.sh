#!/usr/bin/env bash
# The JS SDK as a user gets it: installs the dev tools (npm ci), packs the
# tarball (prepack builds dist/ with tsc), installs it into a fresh project, type-checks the
# tests against the installed package, and runs them with node --test against
# the real dream-api (cmd/dream-api's TestSDKJS starts it, with stripe-mock).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/../.." && pwd)"
GO="${GO:-go}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$here"
npm ci --no-audit --no-fund --loglevel=error
npm pack --silent --pack-destination "$tmp" >/dev/null
tarball="$(ls "$tmp"/dream-api-*.tgz)"

app="$tmp/app"
mkdir -p "$app"
cd "$app"
printf '{"name":"sdk-js-test","private":true,"type":"module"}\n' > package.json
# The package has no dependencies: the tarball installs offline.
npm install --offline --no-audit --no-fund --loglevel=error "$tarball"
mkdir -p src
cp "$here"/test/*.ts src/
cp "$here"/test/*.cjs .
cat > tsconfig.json <<JSON
{
  "compilerOptions": {
    "target": "ES2022", "module": "Node16", "moduleResolution": "Node16",
    "strict": true, "skipLibCheck": false, "outDir": "out", "rootDir": "src",
    "types": ["node"], "typeRoots": ["$here/node_modules/@types"]
  },
  "include": ["src"]
}
JSON
node "$here/node_modules/typescript/bin/tsc" -p tsconfig.json

cd "$root"
DREAM_SDK_JS_APP="$app" "$GO" test -count=1 ${SDK_JS_GOTESTFLAGS:-} -run '^TestSDKJS$' ./cmd/dream-api/
