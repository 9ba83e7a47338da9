// peftcpp: the command-line front door (predict, tokenize, info, ...).
#include <iostream>
int main() { std::cout << "peftcpp\n"; }
