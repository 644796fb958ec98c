; Inno Setup 6 script: the Windows installer for Therapy Timer.
; Build the PyInstaller folder first (packaging\dist\therapy-timer, see packaging\therapy-timer.spec),
; then, from any folder:
;   iscc /DAppVersion=0.1.0 packaging\windows\therapy-timer.iss
; Output: packaging\dist\therapy-timer-<version>-windows-x64-setup.exe
; Installs per user without admin rights by default (Program Files when run elevated or with
; /ALLUSERS), adds a Start menu entry, optionally a desktop icon. Uninstall keeps the user's data
; (%LOCALAPPDATA%\therapy-timer).

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=X.Y.Z therapy-timer.iss
#endif
#ifndef BundleDir
  #define BundleDir "..\dist\therapy-timer"
#endif
#define AppName "Therapy Timer"
; Same id as the .desktop file; also the taskbar's AppUserModelID for the shortcuts.
#define AppUserModelId "org.therapytimer.TherapyTimer"
#define GuiExe "therapy-timer-gui.exe"

[Setup]
; Never change AppId: upgrades and the uninstaller find the installed copy by it.
AppId={{01BF6036-7077-484D-A614-153074DF36CE}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=The Therapy Timer developers
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog commandline
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
; Qt 6 runs on Windows 10 and later.
MinVersion=10.0
OutputDir=..\dist
OutputBaseFilename=therapy-timer-{#AppVersion}-windows-x64-setup
SetupIconFile=..\..\resources\icons\org.therapytimer.TherapyTimer.ico
UninstallDisplayIcon={app}\{#GuiExe}
UninstallDisplayName={#AppName}
WizardStyle=modern
Compression=lzma2/max
SolidCompression=yes
CloseApplications=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[InstallDelete]
; An upgrade replaces the whole library folder, so no stale Qt DLL from an older version is loaded.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#GuiExe}"; AppUserModelID: "{#AppUserModelId}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#GuiExe}"; AppUserModelID: "{#AppUserModelId}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#GuiExe}"; Description: "{cm:LaunchProgram,{#StringChange(AppName, '&', '&&')}}"; Flags: nowait postinstall skipifsilent
