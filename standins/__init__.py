"""Local stand-ins of the platforms complaintbot talks to: the Telegram Bot API, the WeChat API and WeCom
robots, an SMTP server. Real HTTP and SMTP on loopback, answering as the platforms do; `complaintbot demo`
runs the service against them, and the tests drive the real client libraries with them."""
