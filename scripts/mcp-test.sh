#!/usr/bin/env bash
# Real MCP clients against Homi's MCP door: the official Python SDK (PyPI
# `mcp`, installed into the project virtualenv .venv) over stdio against
# `homi mcp` and over streamable HTTP against homi-server's /mcp, with the
# fake provider behind Homi; and the official MCP Inspector's CLI mode (npm
# `@modelcontextprotocol/inspector`, installed under .venv/) listing and
# calling the tools over both; and the README's snippets as written
# (homi-server/tests/mcp/test_mcp.py).
#   bash scripts/mcp-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check 'mcp==2.3.0' 'pytest>=8'
# Every script builds the one feature set the tests build (the whole workspace,
# all features): one build of the dependency tree serves every check.
cargo build -q --workspace --all-features --bins
npm install --prefix .venv/mcp-inspector --no-audit --no-fund --loglevel=error \
  '@modelcontextprotocol/inspector@2.12.0' >/dev/null
export HOMI_MCP_INSPECTOR="$PWD/.venv/mcp-inspector/node_modules/.bin/mcp-inspector"
# Claude Code's CLI, to run the README's `claude mcp add` lines and check that
# `claude mcp list` connects (it needs no sign-in for that).
npm install --prefix .venv/claude-code --no-audit --no-fund --loglevel=error \
  '@anthropic-ai/claude-code@2.1.332' >/dev/null
export HOMI_CLAUDE_CLI="$PWD/.venv/claude-code/node_modules/.bin/claude"
.venv/bin/python -m pytest -q -p no:cacheprovider homi-server/tests/mcp
# The stdio benchmark (homi-server/bench/mcp_stdio.py) at smoke size, so that
# it cannot rot: the local embedder, no provider.
.venv/bin/python homi-server/bench/mcp_stdio.py --homi target/debug/homi \
  --model-dir "$(bash scripts/model.sh)" --memories 30 --searches 10
