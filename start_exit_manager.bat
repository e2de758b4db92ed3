@echo off
REM Run only the exit-manager (IB clientId 10), without the supervisor: e.g. to keep every
REM position protected while the day-trader is off. Creates .venv-daytrader and installs on
REM first run, initialises the database. Extra arguments are daytrading global options
REM (e.g. start_exit_manager.bat --mode paper).
setlocal
cd /d "%~dp0"
call "%~dp0scripts\bootstrap.bat" || exit /b 1
".venv-daytrader\Scripts\daytrading.exe" %* db init >nul || exit /b 1
".venv-daytrader\Scripts\daytrading.exe" %* exit-manager
exit /b %ERRORLEVEL%
