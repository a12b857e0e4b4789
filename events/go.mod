module github.com/valetauth/valet/events

go 1.26
