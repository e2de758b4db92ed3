@echo off
REM Create .venv-daytrader when missing and install the project into it (Windows).
if not exist "%~dp0..\.venv-daytrader\Scripts\python.exe" (
  echo [bootstrap] creating virtual environment .venv-daytrader
  py -3 -m venv "%~dp0..\.venv-daytrader" 2>nul || python -m venv "%~dp0..\.venv-daytrader" || exit /b 1
  "%~dp0..\.venv-daytrader\Scripts\python.exe" -m pip install --quiet --upgrade pip
  echo [bootstrap] installing daytrading (first run downloads the dependencies)
  "%~dp0..\.venv-daytrader\Scripts\python.exe" -m pip install --quiet -e "%~dp0.." || exit /b 1
)
exit /b 0
