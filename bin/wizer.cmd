@ECHO off
node "%~dp0wizer.js" %*
