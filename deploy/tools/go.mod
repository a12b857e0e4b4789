module github.com/valetauth/valet/deploy/tools

go 1.26.0
