# Sourced by the scripts: the environment cargo-leptos builds the server with, so that
# `cargo test` reuses the same compiled dependencies instead of building them again.
# cargo-leptos appends `--cfg erase_components` to RUSTFLAGS itself: leave RUSTFLAGS unset
# for it and pass $SERVER_RUSTFLAGS to plain cargo commands.
export LEPTOS_OUTPUT_NAME=scanlogin LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg \
  LEPTOS_SITE_ADDR=127.0.0.1:3000 LEPTOS_RELOAD_PORT=3001 LEPTOS_LIB_DIR=. LEPTOS_BIN_DIR=. \
  LEPTOS_JS_MINIFY=false LEPTOS_HASH_FILES=false
export SERVER_RUSTFLAGS="--cfg erase_components"
unset RUSTFLAGS
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
# wasm-opt for release builds, when scripts/setup --release installed it here.
[ -d "$PWD/tools/node_modules/.bin" ] && export PATH="$PWD/tools/node_modules/.bin:$PATH"
true
