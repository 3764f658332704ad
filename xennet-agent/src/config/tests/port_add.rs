//! `port add` requests go through the same port rules as the file, with the same messages.
