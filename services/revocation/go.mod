module github.com/valetauth/valet/services/revocation

go 1.26
