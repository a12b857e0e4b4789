module github.com/valetauth/valet/services/valet

go 1.26
