@echo off
REM EMERGENCY: set the global freeze, cancel every open order, flatten every position at market,
REM close the database rows (reason liquidate_all). Asks for confirmation unless --yes.
REM Works while the bots run and when the database is missing or corrupt (broker first).
REM Arguments go to "daytrading liquidate-all" (global options such as --config may be given anywhere).
REM Exit code: 0 flat with nothing working, 1 the broker part failed, 2 bad input.
setlocal
cd /d "%~dp0"
call "%~dp0scripts\bootstrap.bat" || exit /b 1
".venv-daytrader\Scripts\python.exe" "%~dp0scripts\liquidate_all.py" %*
set RC=%ERRORLEVEL%
REM keep a double-clicked window open so the result can be read
if not defined DAYTRADING_NO_PAUSE pause
exit /b %RC%
