@echo off
REM Run only the day-trader (IB clientId 2), without the supervisor. Start the exit-manager
REM first (start_exit_manager.bat): the day-trader never sells, so without the exit-manager
REM its positions have no target and no stop. Creates .venv-daytrader on first run.
REM Extra arguments are daytrading global options (e.g. start_day_trader.bat --mode paper).
setlocal
cd /d "%~dp0"
call "%~dp0scripts\bootstrap.bat" || exit /b 1
".venv-daytrader\Scripts\daytrading.exe" %* db init >nul || exit /b 1
".venv-daytrader\Scripts\daytrading.exe" %* day-trader
exit /b %ERRORLEVEL%
