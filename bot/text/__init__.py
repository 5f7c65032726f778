"""Pure text transforms on what is posted and sent: splitting into messages, redacting
secrets, neutralizing mentions and marking untrusted content. No I/O."""
