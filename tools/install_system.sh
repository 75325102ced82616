#!/usr/bin/env bash
# Install the Debian packages the Papernotes project needs outside Python:
#
#   chromium, chromium-driver   headless browser + WebDriver for tools/browser_check.py
#   dataset-fashion-mnist       the Fashion-MNIST data set, read from /usr/share by the notebooks
#   nodejs (with npm)           only when `npm` is not on PATH: `npm ci` fetches MathJax and the
#                               Jupyter widgets bundle that tools/vendor_assets.py copies into the site
#   (with the argument `pdf`: the TeX packages and fonts of `make pdf` instead; see below)
#
# Idempotent and fast: `apt-get update` runs (once) only if something is missing, so a second run
# does nothing but a few dpkg queries. Where apt cannot be used (not root, or no apt-get), it says
# what was skipped and how to install it, and exits 0; the steps that need the packages then fail
# with their own clear messages.
set -euo pipefail

packages=(chromium chromium-driver dataset-fashion-mnist sword-text-kjv sword-text-sparv dict-freedict-eng-spa)

if ! command -v npm >/dev/null 2>&1; then
    # Debian ships npm as a separate package; nodejs alone would not provide `npm`.
    packages+=(nodejs npm)
fi

# `bash tools/install_system.sh pdf` (what `make pdf` runs) installs instead what the PDF needs:
# XeLaTeX with the LaTeX packages Sphinx's LaTeX writer uses, latexmk, the FreeFont family
# (Sphinx's default fonts under XeLaTeX), and xeCJK with the Noto CJK fonts for the Japanese
# text of the byte-to-span chapter (xeCJK needs ctex, packaged with the Chinese support).
# About 240 MB to download.
if [ "${1:-}" = "pdf" ]; then
    packages=(texlive-xetex texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended
              texlive-plain-generic texlive-lang-cjk texlive-lang-chinese lmodern latexmk
              fonts-freefont-otf fonts-noto-cjk)
fi

# A package counts as present when dpkg says it is fully installed.
is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

missing=()
for pkg in "${packages[@]}"; do
    if ! command -v dpkg-query >/dev/null 2>&1 || ! is_installed "$pkg"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_system: all present (${packages[*]})"
    exit 0
fi

install_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_system: apt-get not found; skipped installing: ${missing[*]}" >&2
    echo "install_system: install them with your system's package manager (on Debian/Ubuntu, as root: ${install_cmd})" >&2
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install_system: not root; skipped installing: ${missing[*]}" >&2
    echo "install_system: to install them run: sudo sh -c '${install_cmd}'" >&2
    exit 0
fi

echo "install_system: installing ${missing[*]}"
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
echo "install_system: done"
