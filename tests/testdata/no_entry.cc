// A shared object that is not an Ouroboros plugin.
extern "C" int not_a_plugin() { return 42; }
