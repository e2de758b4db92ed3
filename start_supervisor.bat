@echo off
REM Main job (Windows). Creates .venv-daytrader and installs on first run, initialises the
REM database, then runs the supervisor with allocation 0.25 (override: start_supervisor.bat --allocation 0.1).
setlocal
cd /d "%~dp0"
call "%~dp0scripts\bootstrap.bat" || exit /b 1
".venv-daytrader\Scripts\daytrading.exe" db init || exit /b 1
".venv-daytrader\Scripts\daytrading.exe" supervisor --allocation 0.25 %*
exit /b %ERRORLEVEL%
