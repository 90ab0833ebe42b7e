#!/usr/bin/env bash
# Vendor the JavaScript an OFFLINE reader of the book needs, so no page fetches anything from a CDN:
#   - require.js + @jupyter-widgets/html-manager's embed-amd.js (and the fonts it loads from beside
#     itself) render the widget state that papermill embeds in executed chapters;
#   - MathJax 3 (tex-chtml-full: every TeX extension bundled, so nothing is auto-loaded) + its fonts.
# npm's node_modules live under .cache/widget-js; the files the book serves land in book/_vendor/
# (NOT book/_static: Jupyter Book 1 adds every .js under html_static_path to every page once a
# _static folder exists). Both are git-ignored. Idempotent: a second run with the same pins only
# re-checks the versions. Writes into a temporary folder first and swaps it in, then touches
# book/_vendor/.complete, which is what the Makefile waits for.
set -euo pipefail
cd "$(dirname "$0")/.."

# Exact pins. html-manager 1.x is the ipywidgets 8 line (our ipywidgets==8.1.9 writes
# @jupyter-widgets/controls 2.0.0 models, which this bundle carries).
HTML_MANAGER=1.0.15
REQUIREJS=2.3.8
MATHJAX=3.2.2

NPM_DIR=.cache/widget-js
VENDOR=book/_vendor
STAMP="$VENDOR/.complete"
LAYOUT=2  # bump when the files copied into book/_vendor change, so an old copy is replaced
PINS="html-manager=$HTML_MANAGER requirejs=$REQUIREJS mathjax=$MATHJAX layout=$LAYOUT"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$PINS" ]]; then
    touch "$STAMP"  # newer than this script again, so make does not ask twice
    echo "vendor_widget_js: $VENDOR already holds $PINS"
    exit 0
fi

command -v npm >/dev/null || { echo "vendor_widget_js: npm not found; install it (apt-get install -y npm)" >&2; exit 1; }

installed_version() {  # prints the installed version of an npm package, or nothing
    local pkg_json="$NPM_DIR/node_modules/$1/package.json"
    [[ -f "$pkg_json" ]] && node -e "console.log(require('./$pkg_json').version)" || true
}

if [[ "$(installed_version @jupyter-widgets/html-manager)" != "$HTML_MANAGER" ||
      "$(installed_version requirejs)" != "$REQUIREJS" ||
      "$(installed_version mathjax)" != "$MATHJAX" ]]; then
    mkdir -p "$NPM_DIR"
    cat > "$NPM_DIR/package.json" <<EOF
{
  "name": "rmt-book-vendor",
  "private": true,
  "dependencies": {
    "@jupyter-widgets/html-manager": "$HTML_MANAGER",
    "requirejs": "$REQUIREJS",
    "mathjax": "$MATHJAX"
  }
}
EOF
    echo "vendor_widget_js: npm install $PINS into $NPM_DIR"
    (cd "$NPM_DIR" && npm install --no-audit --no-fund --loglevel=error)
fi

NM="$NPM_DIR/node_modules"
TMP="$(mktemp -d "book/.vendor.tmp.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# Widgets: embed-amd.js finds its fonts relative to its own URL, so they sit beside it.
mkdir -p "$TMP/widgets"
cp "$NM/requirejs/require.js" "$TMP/widgets/"
cp "$NM/@jupyter-widgets/html-manager/dist/embed-amd.js" "$TMP/widgets/"
find "$NM/@jupyter-widgets/html-manager/dist" -maxdepth 1 -type f \
    \( -name '*.woff' -o -name '*.woff2' -o -name '*.ttf' -o -name '*.eot' -o -name '*.svg' \) \
    -exec cp {} "$TMP/widgets/" \;

# embed-amd.js defines named AMD modules (@jupyter-widgets/controls, ...) and webpack locates their
# fonts from each module's RequireJS URL, by default <page folder>/@jupyter-widgets/...: a missing
# file. This script, loaded between require.js and embed-amd.js (book/_config.yml, nb_ipywidgets_js),
# maps every one of those module names into this folder, so the fonts are found beside the bundle.
cat > "$TMP/widgets/amd-paths.js" <<'JS'
// Written by scripts/vendor_widget_js.sh: point embed-amd.js's named AMD modules at this folder.
(function () {
  var here = document.currentScript.src.replace(/\/[^\/]*$/, "");
  var names = ["base", "controls", "base7", "controls7", "html-manager"];
  var paths = {"@jupyter-widgets/html-manager/dist/libembed-amd": here + "/libembed-amd"};
  names.forEach(function (name) { paths["@jupyter-widgets/" + name] = here + "/" + name; });
  window.require.config({paths: paths});
})();
JS

# MathJax: the combined component plus what it may load at run time (fonts, menu, assistive MathML).
MJ="$NM/mathjax/es5"
mkdir -p "$TMP/mathjax/output/chtml"
cp "$MJ/tex-chtml-full.js" "$TMP/mathjax/"
cp -r "$MJ/output/chtml/fonts" "$TMP/mathjax/output/chtml/"
cp -r "$MJ/a11y" "$MJ/ui" "$TMP/mathjax/"
cp "$NM/mathjax/LICENSE" "$TMP/mathjax/LICENSE"

for required in widgets/require.js widgets/amd-paths.js widgets/embed-amd.js mathjax/tex-chtml-full.js; do
    [[ -s "$TMP/$required" ]] || { echo "vendor_widget_js: $required is missing after npm install" >&2; exit 1; }
done
ls "$TMP"/widgets/*.woff2 >/dev/null 2>&1 || { echo "vendor_widget_js: html-manager fonts not found" >&2; exit 1; }

echo "$PINS" > "$TMP/.complete"
rm -rf "$VENDOR"
mv "$TMP" "$VENDOR"
trap - EXIT
echo "vendor_widget_js: vendored $PINS into $VENDOR ($(du -sh "$VENDOR" | cut -f1))"
