"""Detail and modal screens of the console, one module each."""
