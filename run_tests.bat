@echo off
REM The test suite on Windows (same as run_tests.sh).
setlocal
cd /d "%~dp0"
call "%~dp0scripts\bootstrap.bat" || exit /b 1
".venv-daytrader\Scripts\python.exe" -m pip install --quiet -e ".[dev]" || exit /b 1
".venv-daytrader\Scripts\python.exe" -m pytest -n 2 --dist loadfile %*
exit /b %ERRORLEVEL%
