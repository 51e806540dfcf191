//! vmdkrecover library
