; Inno Setup script: wraps dist\fireside (PyInstaller one-folder) as a per-user installer.
; packaging\windows\build.ps1 runs it: iscc /DAppVersion=0.1.0 packaging\windows\fireside.iss
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
[Setup]
AppId={{6F1D9B2A-6C1E-4E0B-9E57-5A3F1B7C2D10}
AppName=Fireside
AppVersion={#AppVersion}
AppPublisher=Fireside
DefaultDirName={localappdata}\Programs\Fireside
DefaultGroupName=Fireside
PrivilegesRequired=lowest
OutputDir=..\..\dist
OutputBaseFilename=Fireside-{#AppVersion}-windows-setup
SetupIconFile=..\..\assets\fireside.ico
UninstallDisplayIcon={app}\fireside.exe
Compression=lzma2
SolidCompression=yes
ArchitecturesInstallIn64BitMode=x64compatible

[Files]
Source: "..\..\dist\fireside\*"; DestDir: "{app}"; Flags: recursesubdirs ignoreversion

[Icons]
Name: "{group}\Fireside"; Filename: "{app}\fireside.exe"
Name: "{userdesktop}\Fireside"; Filename: "{app}\fireside.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

[Run]
Filename: "{app}\fireside.exe"; Description: "Open Fireside"; Flags: nowait postinstall skipifsilent
